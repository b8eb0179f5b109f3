//! Docker-style output: tables, Go-template `--format`, inspect shapes (being built).
