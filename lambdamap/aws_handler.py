"""The handler name deployed functions use (``lambdamap.aws_handler.lambda_handler``); it lives in
:mod:`lambdamap.aws.handler`. Kept so that functions deployed by earlier releases keep working."""

from lambdamap.aws.handler import lambda_handler

__all__ = ["lambda_handler"]
