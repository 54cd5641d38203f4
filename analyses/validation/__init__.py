"""Model organisms with known answers, the rules that read a method's output as a location, and
the validation table (``validate``).

- ``materials``: the fixed words, prompts, preference pairs and fine-tuning texts;
- ``edits``: organism 1, an RM that differs from its base in one block (a rank-one edit);
- ``sft``: a base LM fine-tuned so that agency words answer value questions (organisms 3 and 4);
- ``rules`` and ``inheritance_rules``: each method's output -> a found location (fixed in advance);
- ``block``, ``trained``, ``inherited``: build each family and run the suite's ordinary commands;
- ``plan``: which organisms the quick and the full set hold;
- ``table`` and ``report``: ``validation.csv``, the summary line, the figure and the report section.
"""
