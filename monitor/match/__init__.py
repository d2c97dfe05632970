"""Matching: text analysis, topic profiles, background statistics, the topic model, explain and eval."""
