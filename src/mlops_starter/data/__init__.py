"""Where the table comes from (the demo generator, a user's file), what its columns are, and its profile."""
