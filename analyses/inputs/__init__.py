"""Everything the suite reads: prompts, responses, lexicons (parse / expand / sources), preference
data and score tables."""
