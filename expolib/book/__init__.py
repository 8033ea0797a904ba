"""The book's own experiments and figures: code the chapters run to teach, not used by the library's
command line."""
