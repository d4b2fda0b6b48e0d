"""Training of Timewarp flows: pair-shard loading, maximum likelihood and acceptance fine-tuning."""
