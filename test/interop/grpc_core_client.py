"""
A client on a different gRPC implementation: Python's grpcio (gRPC C-core,
Debian package python3-grpcio), the stack family that grpcurl's users and
non-Node services call from. Message types come from the server's own
reflection (v1 and v1alpha), loaded into a DescriptorPool that refuses a file
whose imports it lacks, so nothing here is generated or copied, and a
reflection answer that a strict client cannot use fails this test.

Usage: python3 grpc_core_client.py <host:port>
Prints one JSON object with what it observed; the vitest test judges it.
"""
import json
import sys
import uuid

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

address = sys.argv[1]
channel = grpc.insecure_channel(address)


def reflection_messages(package):
    """grpc.reflection.<package> request/response, declared here (the server does not serve them)."""
    proto = descriptor_pb2.FileDescriptorProto(name=f"reflection-{package}.proto", package=f"grpc.reflection.{package}", syntax="proto3")
    T = descriptor_pb2.FieldDescriptorProto
    request = proto.message_type.add(name="ServerReflectionRequest")
    request.oneof_decl.add(name="message_request")
    request.field.add(name="host", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    for name, number in (("file_by_filename", 3), ("file_containing_symbol", 4), ("list_services", 7)):
        request.field.add(name=name, number=number, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL, oneof_index=0)
    fdr = proto.message_type.add(name="FileDescriptorResponse")
    fdr.field.add(name="file_descriptor_proto", number=1, type=T.TYPE_BYTES, label=T.LABEL_REPEATED)
    service = proto.message_type.add(name="ServiceResponse")
    service.field.add(name="name", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    services = proto.message_type.add(name="ListServiceResponse")
    services.field.add(name="service", number=1, type=T.TYPE_MESSAGE, type_name=f".grpc.reflection.{package}.ServiceResponse", label=T.LABEL_REPEATED)
    error = proto.message_type.add(name="ErrorResponse")
    error.field.add(name="error_code", number=1, type=T.TYPE_INT32, label=T.LABEL_OPTIONAL)
    error.field.add(name="error_message", number=2, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    response = proto.message_type.add(name="ServerReflectionResponse")
    response.oneof_decl.add(name="message_response")
    response.field.add(name="valid_host", number=1, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL)
    for name, number, type_name in (
        ("file_descriptor_response", 4, "FileDescriptorResponse"),
        ("list_services_response", 6, "ListServiceResponse"),
        ("error_response", 7, "ErrorResponse"),
    ):
        response.field.add(name=name, number=number, type=T.TYPE_MESSAGE, type_name=f".grpc.reflection.{package}.{type_name}", label=T.LABEL_OPTIONAL, oneof_index=0)
    own = descriptor_pool.DescriptorPool()
    own.Add(proto)
    own_factory = message_factory.MessageFactory(own)
    return (
        own_factory.GetPrototype(own.FindMessageTypeByName(f"grpc.reflection.{package}.ServerReflectionRequest")),
        own_factory.GetPrototype(own.FindMessageTypeByName(f"grpc.reflection.{package}.ServerReflectionResponse")),
    )


class ReflectionError(Exception):
    pass


def load_by_reflection(package):
    """
    What grpcurl does: list the services, ask for the file of each, then for
    every import not yet seen by file name, transitively. Each file goes into
    the pool after its imports, so a missing or wrong import list is refused.
    Returns the pool and what was seen.
    """
    Request, Response = reflection_messages(package)
    info = channel.stream_stream(
        f"/grpc.reflection.{package}.ServerReflection/ServerReflectionInfo",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=Response.FromString,
    )

    def ask(**fields):
        (response,) = list(info(iter([Request(**fields)]), timeout=10))
        if response.WhichOneof("message_response") == "error_response":
            raise ReflectionError(f"{fields}: {response.error_response.error_code} {response.error_response.error_message}")
        return response

    services = sorted(s.name for s in ask(list_services="").list_services_response.service)
    files = {}
    first_file = {}

    def store(response):
        answered = [descriptor_pb2.FileDescriptorProto.FromString(b) for b in response.file_descriptor_response.file_descriptor_proto]
        for file in answered:
            files.setdefault(file.name, file)
        return answered[0].name

    # The services, and the status detail types a client looks up to decode a refusal's details.
    for symbol in services + ["google.rpc.Status", "google.rpc.ErrorInfo"]:
        first_file[symbol] = store(ask(file_containing_symbol=symbol))
    missing = [d for f in list(files.values()) for d in f.dependency if d not in files]
    while missing:
        store(ask(file_by_filename=missing.pop()))
        missing = [d for f in list(files.values()) for d in f.dependency if d not in files]

    pool = descriptor_pool.DescriptorPool()
    added = []

    def add(name):
        if name in added:
            return
        for dependency in files[name].dependency:
            add(dependency)
        pool.AddSerializedFile(files[name].SerializeToString())  # raises if a type it uses is not defined
        added.append(name)

    for name in files:
        add(name)

    methods = []
    for service in services:
        descriptor = pool.FindServiceByName(service)
        for method in descriptor.methods:
            methods.append(f"{service}/{method.name}: {method.input_type.full_name} -> {method.output_type.full_name}")
    return pool, {
        "services": services,
        "file": first_file.get("bank.v1.AccountService"),
        "files": sorted(added),
        "methods": methods,
    }


# Reflection first, both versions: every type the calls below use comes from it.
report = {"reflection": {}}
pools = {}
for package in ("v1", "v1alpha"):
    try:
        pools[package], report["reflection"][package] = load_by_reflection(package)
    except (ReflectionError, TypeError, KeyError) as error:
        report["reflection"][package] = {"error": f"{type(error).__name__}: {error}"}
if "v1" not in pools:
    print(json.dumps(report))
    sys.exit(0)
pool = pools["v1"]
factory = message_factory.MessageFactory(pool)


def message(name):
    return factory.GetPrototype(pool.FindMessageTypeByName(name))


def unary(method, request, response_type, timeout=10):
    call = channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response_type.FromString)
    return call(request, timeout=timeout)


def command(name, request_fields):
    request = message(f"bank.v1.{name}Request")(**request_fields)
    return unary(f"/bank.v1.AccountService/{name}", request, message(f"bank.v1.{name}Response"))


def refusal(error):
    """The status and, from the grpc-status-details-bin trailer, the google.rpc.ErrorInfo reason."""
    observed = {"code": error.code().name, "message": error.details(), "reason": None, "metadata": {}}
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = message("google.rpc.Status").FromString(value)
            for detail in status.details:
                if detail.type_url.endswith("/google.rpc.ErrorInfo"):
                    info = message("google.rpc.ErrorInfo").FromString(detail.value)
                    observed["reason"] = info.reason
                    observed["metadata"] = dict(info.metadata)
    return observed


health = unary("/grpc.health.v1.Health/Check", message("grpc.health.v1.HealthCheckRequest")(service=""), message("grpc.health.v1.HealthCheckResponse"))
report["health"] = message("grpc.health.v1.HealthCheckResponse").DESCRIPTOR.enum_types_by_name["ServingStatus"].values_by_number[health.status].name

account_id = f"interop-{uuid.uuid4().hex[:12]}"
command("OpenAccount", {"account_id": account_id, "owner": "C-core", "currency": "EUR", "command_id": f"open-{account_id}"})
# The largest amount one operation may move (DESIGN), as an int64 on the wire.
big = 10**12
command("Deposit", {"account_id": account_id, "amount": big, "command_id": f"dep-{account_id}"})
withdrawn = command("Withdraw", {"account_id": account_id, "amount": 2, "command_id": f"wd-{account_id}"})
report["balance"] = str(withdrawn.account.balance)
report["revision"] = str(withdrawn.revision)

try:
    command("Withdraw", {"account_id": account_id, "amount": big, "command_id": f"too-much-{account_id}"})
    report["overdraw"] = "accepted"
except grpc.RpcError as error:
    report["overdraw"] = refusal(error)

try:
    command("Deposit", {"account_id": account_id, "amount": big + 1, "command_id": f"over-{account_id}"})
    report["over_bound"] = "accepted"
except grpc.RpcError as error:
    report["over_bound"] = refusal(error)

try:
    command("GetAccount", {"account_id": "interop-missing"})
    report["missing"] = "found"
except grpc.RpcError as error:
    report["missing"] = refusal(error)

# A subscription: history, the caught-up marker, then a live event written by another call; then cancel.
subscribe = channel.unary_stream(
    "/bank.v1.AccountService/SubscribeAccount",
    request_serializer=lambda m: m.SerializeToString(),
    response_deserializer=message("bank.v1.SubscribeAccountResponse").FromString,
)
stream = subscribe(message("bank.v1.SubscribeAccountRequest")(account_id=account_id), timeout=15)
seen = []
for item in stream:
    kind = item.WhichOneof("message")
    if kind == "caught_up":
        seen.append("caught_up")
        command("Deposit", {"account_id": account_id, "amount": 5, "command_id": f"live-{account_id}"})
        continue
    seen.append(f"{item.event.revision}:{item.event.WhichOneof('payload')}")
    if item.event.WhichOneof("payload") == "deposited" and item.event.deposited.amount == 5:
        break
stream.cancel()
report["subscription"] = seen

channel.close()
print(json.dumps(report))
