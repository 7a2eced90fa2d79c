"""Five-point face alignment to the rig's canonical template and the aligned face crops it cuts
(numpy; torch when handed tensors)."""
