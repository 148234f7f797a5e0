"""SQS -> S3 -> OpenSearch indexing worker with guaranteed message settlement."""

__version__ = "1.0.0"
