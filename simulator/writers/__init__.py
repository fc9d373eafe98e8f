"""Writers: render simulator data structures back into the file formats we read."""
