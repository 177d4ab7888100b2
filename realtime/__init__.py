"""Live side of moext: capture, streams, spotting, backends and user interfaces."""
