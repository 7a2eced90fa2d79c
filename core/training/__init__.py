"""Training (torch): trainers, their shared helpers, ONNX export and re-stamping models."""
