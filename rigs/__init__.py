"""Rig data (TOML specs, retarget maps) and the small numpy code that generates built-in meshes."""
