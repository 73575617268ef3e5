"""moto_server with DynamoDB requests serialized: the emulator every test and script starts.

moto's DynamoDB TransactWriteItems is not isolated. It deep-copies the tables it touches when it
starts, applies its writes one by one, and when a condition fails it puts the copies back. Under
moto's threaded server, a transaction that fails therefore erases every write that another request
committed to those tables in the meantime (and a concurrent reader sees half a transaction).
Real DynamoDB transactions are serializable, so this race loses alerts only in the emulator: two
pipelines given the same batch at once lost one alert in about eight runs of
`the_same_batch_given_to_two_pipelines_at_once_stores_each_alert_once`, always a committed
alert of the winning transaction, erased by the losing one's rollback.

Serving one DynamoDB request at a time makes every request atomic and isolated, as DynamoDB's
are. Other services keep moto's concurrency (SQS long polls must not block the rest).

Run it as moto_server: `python moto_server.py -H 127.0.0.1 -p PORT`.
"""

import sys
import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_dynamodb_lock = threading.Lock()
_call_action = DynamoHandler.call_action


def _serialized_call_action(self):  # type: ignore[no-untyped-def]
    with _dynamodb_lock:
        return _call_action(self)


DynamoHandler.call_action = _serialized_call_action  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
