"""Video -> head pose and AUs without torch: decoding, landmarks, alignment, crops, the ONNX estimators, overlays."""
