"""Evidence for the mislabel check: members (photo, title, price, ...), audit folds and the combiner."""
