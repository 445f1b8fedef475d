/**
 * Reflection's answers where the product's own protos have nothing to show:
 * extensions (top-level and nested), and a descriptor set that cannot be
 * served (a missing import, a service not in it). The served protos are
 * covered over the wire in test/e2e/protocol.test.ts and grpcurl-readme.test.ts.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  file_google_protobuf_descriptor,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { DescriptorIndex } from "../../server/src/grpc/reflection-service.js";

const optional = { label: FieldDescriptorProto_Label.OPTIONAL };
// proto2, so that a message may declare an extension range.
const acme = create(FileDescriptorProtoSchema, {
  name: "acme/widgets.proto",
  package: "acme",
  syntax: "proto2",
  dependency: ["google/protobuf/descriptor.proto"],
  messageType: [
    { name: "Widget", extensionRange: [{ start: 100, end: 200 }], field: [{ name: "id", number: 1, type: FieldDescriptorProto_Type.STRING, ...optional }] },
    { name: "Holder", extension: [{ name: "label", number: 101, extendee: ".acme.Widget", type: FieldDescriptorProto_Type.STRING, ...optional }] },
  ],
  extension: [
    { name: "size", number: 100, extendee: ".acme.Widget", type: FieldDescriptorProto_Type.INT32, ...optional },
    { name: "tag", number: 50001, extendee: ".google.protobuf.FieldOptions", type: FieldDescriptorProto_Type.STRING, ...optional },
  ],
  service: [{ name: "Widgets", method: [{ name: "Get", inputType: ".acme.Widget", outputType: ".acme.Widget" }] }],
});

const serialize = (files: FileDescriptorProto[]) => toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: files }));
const index = new DescriptorIndex(serialize([file_google_protobuf_descriptor.proto, acme]), ["acme.Widgets"]);
const fileNames = (answer: ReturnType<DescriptorIndex["answer"]>) =>
  "fileDescriptorResponse" in answer ? answer.fileDescriptorResponse.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name) : answer;

describe("reflection's descriptor index", () => {
  it("answers the file declaring an extension, with its imports", () => {
    expect(fileNames(index.answer({ messageRequest: "fileContainingExtension", fileContainingExtension: { containingType: "google.protobuf.FieldOptions", extensionNumber: 50001 } }))).toEqual([
      "acme/widgets.proto",
      "google/protobuf/descriptor.proto",
    ]);
    expect(fileNames(index.answer({ messageRequest: "fileContainingExtension", fileContainingExtension: { containingType: "acme.Widget", extensionNumber: 101 } }))).toEqual([
      "acme/widgets.proto",
      "google/protobuf/descriptor.proto",
    ]);
    expect(index.answer({ messageRequest: "fileContainingExtension", fileContainingExtension: { containingType: "acme.Widget", extensionNumber: 102 } })).toMatchObject({
      errorResponse: { errorCode: status.NOT_FOUND },
    });
  });

  it("lists the extension numbers of a type, top-level and nested extensions alike", () => {
    expect(index.answer({ messageRequest: "allExtensionNumbersOfType", allExtensionNumbersOfType: "acme.Widget" })).toEqual({
      allExtensionNumbersResponse: { baseTypeName: "acme.Widget", extensionNumber: [100, 101] },
    });
    expect(index.answer({ messageRequest: "allExtensionNumbersOfType", allExtensionNumbersOfType: "google.protobuf.FieldOptions" })).toEqual({
      allExtensionNumbersResponse: { baseTypeName: "google.protobuf.FieldOptions", extensionNumber: [50001] },
    });
  });

  it("finds extensions and nested extensions by symbol", () => {
    expect(fileNames(index.answer({ messageRequest: "fileContainingSymbol", fileContainingSymbol: "acme.Holder.label" }))).toContain("acme/widgets.proto");
    expect(fileNames(index.answer({ messageRequest: "fileContainingSymbol", fileContainingSymbol: "acme.tag" }))).toContain("acme/widgets.proto");
  });

  it("answers a request with nothing asked with INVALID_ARGUMENT", () => {
    expect(index.answer({})).toMatchObject({ errorResponse: { errorCode: status.INVALID_ARGUMENT } });
  });

  it("refuses at start-up a descriptor set with a missing import, or without a service it should list", () => {
    expect(() => new DescriptorIndex(serialize([acme]), [])).toThrow(/google\/protobuf\/descriptor\.proto/);
    expect(() => new DescriptorIndex(serialize([file_google_protobuf_descriptor.proto, acme]), ["acme.Gadgets"])).toThrow(/acme\.Gadgets/);
  });
});
