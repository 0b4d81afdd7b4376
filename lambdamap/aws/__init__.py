"""Everything AWS: S3 storage, the Lambda invoker and handler, pricing, IAM documents, the layer and deployment.

No module outside this package imports boto3 or names an AWS service.
"""
