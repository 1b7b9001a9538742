import Foundation
import LetheJSON

/// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON, then the raw
/// little-endian tensor data. Reading is strict (every rule of the reference reader, plus duplicate
/// keys rejected); writing reproduces the reference writer's layout byte for byte.
public enum Safetensors {
    public enum DType: String, Sendable, CaseIterable {
        // Upstream's enum order, lowest to highest; the writer sorts by it (descending).
        case BOOL, F4, F6_E2M3, F6_E3M2, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ
        case I16, U16, F16, BF16, I32, U32, F32, C64, F64, I64, U64

        public var bits: Int {
            switch self {
            case .F4: 4
            case .F6_E2M3, .F6_E3M2: 6
            case .BOOL, .U8, .I8, .F8_E5M2, .F8_E4M3, .F8_E8M0, .F8_E4M3FNUZ, .F8_E5M2FNUZ: 8
            case .I16, .U16, .F16, .BF16: 16
            case .I32, .U32, .F32: 32
            case .C64, .F64, .I64, .U64: 64
            }
        }

        var order: Int { Self.allCases.firstIndex(of: self)! }
    }

    public struct Entry: Sendable, Equatable {
        public var dtype: DType
        public var shape: [Int]
        public var data: [UInt8]

        public init(dtype: DType, shape: [Int], data: [UInt8]) {
            self.dtype = dtype
            self.shape = shape
            self.data = data
        }
    }

    /// Errors named after the reference implementation's variants.
    public enum Error: Swift.Error, Sendable, Equatable, CustomStringConvertible {
        case headerTooSmall
        case headerTooLarge(UInt64)
        case invalidHeaderLength(UInt64, fileSize: Int)
        case invalidHeader(String)
        case invalidHeaderDeserialization(String)
        case invalidOffset(String)
        case tensorInvalidInfo(String)
        case validationOverflow(String)
        case misalignedSlice(String)
        case metadataIncompleteBuffer(String)

        public var variant: String {
            switch self {
            case .headerTooSmall: "HeaderTooSmall"
            case .headerTooLarge: "HeaderTooLarge"
            case .invalidHeaderLength: "InvalidHeaderLength"
            case .invalidHeader: "InvalidHeader"
            case .invalidHeaderDeserialization: "InvalidHeaderDeserialization"
            case .invalidOffset: "InvalidOffset"
            case .tensorInvalidInfo: "TensorInvalidInfo"
            case .validationOverflow: "ValidationOverflow"
            case .misalignedSlice: "MisalignedSlice"
            case .metadataIncompleteBuffer: "MetadataIncompleteBuffer"
            }
        }

        public var description: String {
            switch self {
            case .headerTooSmall: "file is shorter than the 8-byte header length"
            case .headerTooLarge(let n): "header length \(n) exceeds the 100,000,000-byte limit"
            case .invalidHeaderLength(let n, let size): "header length \(n) runs past the end of the \(size)-byte file"
            case .invalidHeader(let m), .invalidHeaderDeserialization(let m), .invalidOffset(let m),
                .tensorInvalidInfo(let m),
                .validationOverflow(let m), .misalignedSlice(let m), .metadataIncompleteBuffer(let m):
                m
            }
        }
    }

    public struct File: Sendable, Equatable {
        /// Tensors in data order.
        public var tensors: [(name: String, entry: Entry)]
        public var metadata: [String: String]?

        public init(tensors: [(name: String, entry: Entry)], metadata: [String: String]? = nil) {
            self.tensors = tensors
            self.metadata = metadata
        }

        public subscript(name: String) -> Entry? { tensors.first { $0.name == name }?.entry }

        public static func == (a: File, b: File) -> Bool {
            a.metadata == b.metadata && a.tensors.map(\.name) == b.tensors.map(\.name)
                && a.tensors.map(\.entry) == b.tensors.map(\.entry)
        }
    }

    static let maxHeader: UInt64 = 100_000_000

    public static func read(_ bytes: [UInt8]) throws(Error) -> File {
        guard bytes.count >= 8 else { throw .headerTooSmall }
        let n = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[$1]) << (8 * $1) }
        guard n <= maxHeader else { throw .headerTooLarge(n) }
        guard 8 + Int(n) <= bytes.count else { throw .invalidHeaderLength(n, fileSize: bytes.count) }
        let headerBytes = Array(bytes[8..<(8 + Int(n))])
        guard String(validating: headerBytes, as: UTF8.self) != nil else {
            throw .invalidHeader("header is not valid UTF-8")
        }
        let header: JSONValue
        do {
            header = try JSONParser.parse(headerBytes, file: "safetensors header")
        } catch {
            throw .invalidHeaderDeserialization("header is not one JSON object: \(error.message)")
        }
        guard case .object(let obj) = header else {
            throw .invalidHeaderDeserialization("header must be a JSON object")
        }

        var metadata: [String: String]?
        var infos: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)] = []
        for (name, value) in obj {
            if name == "__metadata__" {
                guard case .object(let m) = value else {
                    throw .invalidHeaderDeserialization("__metadata__ must be an object")
                }
                var out: [String: String] = [:]
                for (k, v) in m {
                    guard case .string(let s) = v else {
                        throw .invalidHeaderDeserialization("__metadata__ value of '\(k)' must be a string")
                    }
                    out[k] = s
                }
                metadata = out
                continue
            }
            guard case .object(let info) = value else {
                throw .invalidHeaderDeserialization("tensor '\(name)' must be an object")
            }
            guard let dtypeName = info["dtype"]?.stringValue, let dtype = DType(rawValue: dtypeName) else {
                throw .invalidHeaderDeserialization("tensor '\(name)' has no known dtype")
            }
            guard let shapeValues = info["shape"]?.arrayValue else {
                throw .invalidHeaderDeserialization("tensor '\(name)' has no shape")
            }
            guard let offsets = info["data_offsets"]?.arrayValue, offsets.count == 2 else {
                throw .invalidHeaderDeserialization("tensor '\(name)' needs data_offsets [begin, end]")
            }
            var shape: [Int] = []
            for d in shapeValues { shape.append(try unsigned(d, what: "shape of '\(name)'")) }
            let begin = try unsigned(offsets[0], what: "data_offsets of '\(name)'")
            let end = try unsigned(offsets[1], what: "data_offsets of '\(name)'")
            infos.append((name, dtype, shape, begin, end))
        }
        infos.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }

        let dataStart = 8 + Int(n)
        var expected = 0
        var tensors: [(name: String, entry: Entry)] = []
        for t in infos {
            guard t.begin == expected, t.end >= t.begin else {
                throw .invalidOffset(
                    "tensor '\(t.name)' occupies [\(t.begin), \(t.end)) but the previous data ends at \(expected)")
            }
            var elements = 1
            for d in t.shape {
                let (p, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow else { throw .validationOverflow("shape \(t.shape) of '\(t.name)' overflows") }
                elements = p
            }
            let (bits, overflow) = elements.multipliedReportingOverflow(by: t.dtype.bits)
            guard !overflow else { throw .validationOverflow("size of '\(t.name)' overflows") }
            guard bits % 8 == 0 else {
                throw .misalignedSlice("'\(t.name)': \(elements) x \(t.dtype.bits) bits is not a whole number of bytes")
            }
            guard bits / 8 == t.end - t.begin else {
                throw .tensorInvalidInfo(
                    "'\(t.name)' is \(t.dtype.rawValue) \(t.shape) (\(bits / 8) bytes) but its offsets span \(t.end - t.begin)"
                )
            }
            guard dataStart + t.end <= bytes.count else {
                throw .metadataIncompleteBuffer("the data section is shorter than the header says")
            }
            tensors.append(
                (
                    t.name,
                    Entry(
                        dtype: t.dtype, shape: t.shape, data: Array(bytes[(dataStart + t.begin)..<(dataStart + t.end)]))
                ))
            expected = t.end
        }
        guard dataStart + expected == bytes.count else {
            throw .metadataIncompleteBuffer(
                "the file has \(bytes.count - dataStart) data bytes; the header accounts for \(expected)")
        }
        return File(tensors: tensors, metadata: metadata)
    }

    private static func unsigned(_ v: JSONValue, what: String) throws(Error) -> Int {
        switch v {
        case .integer(let i) where i >= 0: return i
        case .number(let d) where d.isFinite && d >= 0 && d.rounded() == d:
            throw .validationOverflow("\(what): \(d) is too large")
        default:
            throw .invalidHeaderDeserialization("\(what) must be unsigned integers")
        }
    }

    /// The reference writer's layout: tensors by dtype (descending enum order) then name, compact
    /// JSON with `__metadata__` first, the header padded with spaces to a multiple of 8.
    public static func write(_ file: File) -> [UInt8] {
        let ordered = file.tensors.sorted { a, b in
            a.entry.dtype.order != b.entry.dtype.order
                ? a.entry.dtype.order > b.entry.dtype.order
                : a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
        }
        var header = "{"
        var parts: [String] = []
        if let metadata = file.metadata {
            let members = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(members.joined(separator: ","))}")
        }
        var offset = 0
        for t in ordered {
            let end = offset + t.entry.data.count
            parts.append(
                "\(jsonString(t.name)):{\"dtype\":\"\(t.entry.dtype.rawValue)\",\"shape\":[\(t.entry.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}"
            )
            offset = end
        }
        header += parts.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + headerBytes.count + offset)
        let n = UInt64(headerBytes.count)
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: n >> (8 * i))) }
        out += headerBytes
        for t in ordered { out += t.entry.data }
        return out
    }

    static func jsonString(_ s: String) -> String { CanonicalJSON.quoted(s) }
}
