"""Running the rows: the interleaved rounds that time every loaded runner in turn, and their statistics."""
