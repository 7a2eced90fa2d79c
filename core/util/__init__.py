"""Small helpers every part of core uses: atomic file output, quiet output streams, media file suffixes."""
