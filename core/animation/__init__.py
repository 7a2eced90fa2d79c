"""Animation data: tracking files, AU curve filters, keyframe plans, retarget maps, scripted performances."""
