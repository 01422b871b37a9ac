"""TFDS builders of this project; importing a module registers its builders."""
