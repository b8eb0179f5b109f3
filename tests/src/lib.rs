//! The netns cluster test harness (being built).
