"""One module per group of `moext-train` commands; each registers on `train.app.app`."""
