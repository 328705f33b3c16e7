"""Log in and place an order over AMQP, as another service would (docs/amqp.md).
BK_AMQP_URL=amqp://NAME:PASSWORD@HOST:PORT/%2F BK_USERNAME=.. BK_PASSWORD=.. python3 place_order.py"""
import json, os, time, uuid
import msgpack, pika

params = pika.URLParameters(os.environ["BK_AMQP_URL"])
conn = pika.BlockingConnection(params)
ch = conn.channel()
ch.confirm_delivery()  # with mandatory=True: a command no queue takes raises UnroutableError
replies = {}
ch.basic_consume("amq.rabbitmq.reply-to", auto_ack=True, on_message_callback=lambda _c, _m, props,
                 body: replies.update({props.correlation_id: msgpack.unpackb(body)}))

def call(command, args, token=None, message_id=None, timeout_s=5):
    """One command; its reply {"status", "body"}. Retry with the same message_id."""
    cid = str(uuid.uuid4())
    ch.basic_publish("backend.commands", command, msgpack.packb({"v": 1, "auth": token, "args": args}),
                     pika.BasicProperties(content_type="application/msgpack", delivery_mode=2,
                                          message_id=message_id or str(uuid.uuid4()), correlation_id=cid,
                                          reply_to="amq.rabbitmq.reply-to", expiration=str(timeout_s * 1000),
                                          timestamp=int(time.time()), user_id=params.credentials.username),
                     mandatory=True)
    deadline = time.monotonic() + timeout_s
    while cid not in replies and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)
    return replies.pop(cid)  # KeyError: no reply in time

login = call("auth.login", {"username": os.environ["BK_USERNAME"], "password": os.environ["BK_PASSWORD"]})
assert login["status"] == 200, login
order = call("order.place", {"product_name": "Notebook", "quantity": 2, "price": "19.99"},
             token=login["body"]["access"])  # the bare token: no "Bearer "
assert order["status"] == 201, order
print(json.dumps(order["body"]))
conn.close()
