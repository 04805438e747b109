"""Camera calibration tools: ``appliance calibrate camera`` (chessboard intrinsics) and ``calibrate lane``
(the lane ROI and the expected plate size checked on a camera's frames). Results go under
``calibration/camera/<ID>/`` with a history line per run (docs/CALIBRATION_CAMERA.md)."""
