"""Video -> head pose and AUs without torch: decoding, landmark backends, the ONNX estimators, overlays."""
