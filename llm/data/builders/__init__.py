"""TFDS builders of this project; each module registers one builder class."""
