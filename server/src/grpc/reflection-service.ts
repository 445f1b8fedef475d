/**
 * gRPC server reflection, grpc.reflection.v1 and v1alpha, answered from the
 * descriptor set that `npm run generate` builds with buf: each .proto file is
 * served as compiled, with its real imports, so strict clients (grpcurl,
 * Python's DescriptorPool) resolve every type. @grpc/reflection 1.0.4 rebuilds
 * files per package and drops their imports (grpc-node issue 3034); only its
 * reflection.proto files are used here, for the protocol's messages.
 */
import { createFileRegistry, fromBinary, toBinary, type DescEnum, type DescExtension, type DescFile, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { loadPackageDefinition, status, type Server, type ServerDuplexStream, type ServiceDefinition } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** A ServerReflectionRequest as proto-loader decodes it (camelCase, `messageRequest` names the oneof member set). */
export interface ReflectionRequest {
  host?: string;
  messageRequest?: "fileByFilename" | "fileContainingSymbol" | "fileContainingExtension" | "allExtensionNumbersOfType" | "listServices";
  fileByFilename?: string;
  fileContainingSymbol?: string;
  fileContainingExtension?: { containingType?: string; extensionNumber?: number };
  allExtensionNumbersOfType?: string;
  listServices?: string;
}

type ReflectionAnswer =
  | { fileDescriptorResponse: { fileDescriptorProto: Buffer[] } }
  | { allExtensionNumbersResponse: { baseTypeName: string; extensionNumber: number[] } }
  | { listServicesResponse: { service: Array<{ name: string }> } }
  | { errorResponse: { errorCode: number; errorMessage: string } };

/** What reflection knows: every file of the descriptor set, by file name and by each symbol it declares. */
export class DescriptorIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  private readonly extensions: DescExtension[] = [];
  private readonly messages = new Set<string>();

  /**
   * @param descriptorSet a serialized google.protobuf.FileDescriptorSet; every import must be in it (else this throws)
   * @param services the services the server serves, as `list_services` reports them; each must be declared in the set
   */
  constructor(descriptorSet: Uint8Array, readonly services: readonly string[]) {
    const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, descriptorSet));
    for (const file of registry.files) {
      this.files.set(file.proto.name, file);
      this.indexFile(file);
    }
    for (const service of services) {
      if (!registry.getService(service)) throw new Error(`reflection: service ${service} is not in the descriptor set`);
    }
  }

  answer(request: ReflectionRequest): ReflectionAnswer {
    switch (request.messageRequest) {
      case "fileByFilename":
        return this.fileWithImports(this.files.get(request.fileByFilename ?? ""), `file ${request.fileByFilename}`);
      case "fileContainingSymbol":
        return this.fileWithImports(this.symbols.get(request.fileContainingSymbol ?? ""), `symbol ${request.fileContainingSymbol}`);
      case "fileContainingExtension": {
        const { containingType = "", extensionNumber = 0 } = request.fileContainingExtension ?? {};
        const extension = this.extensions.find((e) => e.extendee.typeName === containingType && e.number === extensionNumber);
        return this.fileWithImports(extension?.file, `extension ${extensionNumber} of ${containingType}`);
      }
      case "allExtensionNumbersOfType": {
        const type = request.allExtensionNumbersOfType ?? "";
        // Like grpc-go: a known message without extensions gets an empty list, an unknown name NOT_FOUND.
        if (!this.messages.has(type)) return notFound(`message type ${type}`);
        const numbers = this.extensions.filter((e) => e.extendee.typeName === type).map((e) => e.number);
        return { allExtensionNumbersResponse: { baseTypeName: type, extensionNumber: numbers.sort((a, b) => a - b) } };
      }
      case "listServices":
        return { listServicesResponse: { service: this.services.map((name) => ({ name })) } };
      default:
        return { errorResponse: { errorCode: status.INVALID_ARGUMENT, errorMessage: "ServerReflectionRequest has no message_request set" } };
    }
  }

  /** The file first, then everything it imports, transitively, each once. */
  private fileWithImports(file: DescFile | undefined, what: string): ReflectionAnswer {
    if (!file) return notFound(what);
    const ordered: DescFile[] = [];
    const visit = (f: DescFile) => {
      if (ordered.includes(f)) return;
      ordered.push(f);
      f.dependencies.forEach(visit);
    };
    visit(file);
    return { fileDescriptorResponse: { fileDescriptorProto: ordered.map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto))) } };
  }

  /** Every fully-qualified name the file declares: types, fields, oneofs, enum values, services, methods, extensions. */
  private indexFile(file: DescFile): void {
    const add = (name: string) => this.symbols.set(name, file);
    const addEnum = (e: DescEnum, scope: string) => {
      add(e.typeName);
      // Enum values are scoped like siblings of their enum, not inside it.
      for (const value of e.values) add(scope ? `${scope}.${value.name}` : value.name);
    };
    const addExtension = (e: DescExtension) => {
      add(e.typeName);
      this.extensions.push(e);
    };
    const addMessage = (m: DescMessage) => {
      add(m.typeName);
      this.messages.add(m.typeName);
      for (const field of m.fields) add(`${m.typeName}.${field.name}`);
      for (const oneof of m.oneofs) add(`${m.typeName}.${oneof.name}`);
      m.nestedMessages.forEach(addMessage);
      for (const e of m.nestedEnums) addEnum(e, m.typeName);
      m.nestedExtensions.forEach(addExtension);
    };
    file.messages.forEach(addMessage);
    for (const e of file.enums) addEnum(e, file.proto.package);
    file.extensions.forEach(addExtension);
    for (const service of file.services) {
      add(service.typeName);
      for (const method of service.methods) add(`${service.typeName}.${method.name}`);
    }
  }
}

function notFound(what: string): ReflectionAnswer {
  return { errorResponse: { errorCode: status.NOT_FOUND, errorMessage: `${what} not found` } };
}

const require = createRequire(import.meta.url);
const reflectionProtos = join(dirname(require.resolve("@grpc/reflection")), "..", "proto", "grpc", "reflection");

/** Adds grpc.reflection.v1 and v1alpha.ServerReflection to the server, both answered from `index`. */
export function addReflectionService(server: Server, index: DescriptorIndex): void {
  const serverReflectionInfo = (call: ServerDuplexStream<ReflectionRequest, unknown>) => {
    call.on("data", (request: ReflectionRequest) => {
      call.write({ validHost: request.host ?? "", originalRequest: request, ...index.answer(request) });
    });
    call.on("end", () => call.end());
    call.on("error", () => {}); // the client went away; nothing to clean up
  };
  for (const version of ["v1", "v1alpha"] as const) {
    const definition = loadSync(join(reflectionProtos, version, "reflection.proto"), { oneofs: true });
    const pkg = loadPackageDefinition(definition) as unknown as Record<"grpc", Record<"reflection", Record<string, { ServerReflection: { service: ServiceDefinition } }>>>;
    server.addService(pkg.grpc.reflection[version]!.ServerReflection.service, { ServerReflectionInfo: serverReflectionInfo });
  }
}
