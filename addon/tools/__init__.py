"""Development tools of the add-on, not part of the extension: the benchmark table, synthetic
recovery, and the generators of the built-in retarget maps and the Rigify contact sheet."""
