"""moto in server mode (DynamoDB, S3, SQS, EventBridge), made safe and fast enough for Belfry.

Four changes to how moto's server runs, none to what it answers:

- Requests are served one at a time (a lock around the WSGI app). moto's
  backends are not thread-safe: concurrent TransactWriteItems calls fail with
  "dictionary changed size during iteration" (500s) under the threaded server.
  SQS ReceiveMessage is the exception: a long poll waits inside moto, and
  under the lock it would stall every other call for its wait.
- TransactWriteItems backs up only the items a transaction touches. moto deep
  copies every table the transaction names so it can roll back, which costs
  O(table size) per call (~15 ms at 1,000 items, 70 ms at 5,000 on this
  machine) and turns an inbox table into a quadratic slowdown.
- Each condition expression text is lexed once: moto lexed it again, with a
  dozen regular expressions, for every item of every transaction.
- It is served by waitress, with keep-alive: werkzeug's development server
  closes every connection after its response, so every client call paid a TCP
  connect (and a DNS look-up in a thread).
"""

from emulators.aws.server import create_app, running_aws, serve

__all__ = ["create_app", "running_aws", "serve"]
