"""The file suffixes the project reads as videos and as images (lower case, with the dot)."""

# anything OpenCV decodes; the tracker, the face-crop collector, the dataset protocols and the
# add-on's file browser all go by this list
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
