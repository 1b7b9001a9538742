import Foundation
import LetheTensor

/// NumPy arrays: `.npy` (format 1.0-3.0, C order) and `.npz` (a ZIP of them, stored or deflated,
/// ZIP64 as NumPy writes it).
public enum NumPy {
    public struct Array: Sendable {
        public enum DType: String, Sendable { case u1, i1, u2, i2, u4, i4, u8, i8, f4, f8, b1 }
        public var dtype: DType
        public var shape: [Int]
        /// Raw little-endian element bytes.
        public var bytes: [UInt8]

        public var count: Int { shape.reduce(1, *) }

        /// Elements as Double.
        public func values() -> [Double] {
            let n = count
            func word(_ i: Int, _ size: Int) -> UInt64 {
                var v: UInt64 = 0
                for b in 0..<size { v |= UInt64(bytes[i * size + b]) << (8 * b) }
                return v
            }
            switch dtype {
            case .u1, .b1: return bytes.prefix(n).map(Double.init)
            case .i1: return bytes.prefix(n).map { Double(Int8(bitPattern: $0)) }
            case .u2: return (0..<n).map { Double(UInt16(word($0, 2))) }
            case .i2: return (0..<n).map { Double(Int16(bitPattern: UInt16(word($0, 2)))) }
            case .u4: return (0..<n).map { Double(UInt32(word($0, 4))) }
            case .i4: return (0..<n).map { Double(Int32(bitPattern: UInt32(word($0, 4)))) }
            case .u8: return (0..<n).map { Double(word($0, 8)) }
            case .i8: return (0..<n).map { Double(Int64(bitPattern: word($0, 8))) }
            case .f4: return (0..<n).map { Double(Float(bitPattern: UInt32(word($0, 4)))) }
            case .f8: return (0..<n).map { Double(bitPattern: word($0, 8)) }
            }
        }
    }

    public static func parseNPY(_ data: [UInt8], path: String) throws(DataError) -> Array {
        guard data.count >= 10, data[0] == 0x93, Swift.Array(data[1..<6]) == Swift.Array("NUMPY".utf8) else {
            throw DataError("not a NumPy .npy array (bad magic)", path: path)
        }
        let major = data[6]
        let headerLength: Int
        let start: Int
        switch major {
        case 1:
            headerLength = Int(data[8]) | Int(data[9]) << 8
            start = 10
        case 2, 3:
            guard data.count >= 12 else { throw DataError("truncated .npy header", path: path) }
            headerLength = (0..<4).reduce(0) { $0 | Int(data[8 + $1]) << (8 * $1) }
            start = 12
        default: throw DataError(".npy format version \(major) is not supported (1, 2, 3 are)", path: path)
        }
        guard headerLength <= data.count - start else { throw DataError("truncated .npy header", path: path) }
        let header = String(decoding: data[start..<(start + headerLength)], as: UTF8.self)
        func field(_ key: String) -> Substring? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return header[r.upperBound...].drop { $0 == " " }
        }
        guard let descrField = field("descr"), descrField.first == "'",
            let end = descrField.dropFirst().firstIndex(of: "'")
        else {
            throw DataError(".npy header has no 'descr': \(header)", path: path)
        }
        let descr = String(descrField[descrField.index(after: descrField.startIndex)..<end])
        guard descr.count >= 3,
            descr.first == "<" || descr.first == "|" || (descr.first == ">" && descr.hasSuffix("1")),
            let dtype = Array.DType(rawValue: String(descr.dropFirst()))
        else {
            throw DataError(
                "dtype '\(descr)' is not supported (little-endian integers, float32/64 and bool are)", path: path)
        }
        if field("fortran_order")?.hasPrefix("True") == true {
            throw DataError("Fortran-ordered arrays are not supported; save with np.ascontiguousarray", path: path)
        }
        guard let shapeField = field("shape"), shapeField.first == "(", let close = shapeField.firstIndex(of: ")")
        else {
            throw DataError(".npy header has no 'shape': \(header)", path: path)
        }
        var shape: [Int] = []
        for part in shapeField[shapeField.index(after: shapeField.startIndex)..<close].split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let v = Int(t), v >= 0 else {
                throw DataError(".npy shape \(shapeField[...close]) is not a tuple of sizes", path: path)
            }
            shape.append(v)
        }
        let size = ["u1": 1, "i1": 1, "b1": 1, "u2": 2, "i2": 2, "u4": 4, "i4": 4, "f4": 4, "u8": 8, "i8": 8, "f8": 8][
            dtype.rawValue]!
        let body = start + headerLength
        var need = size
        for dimension in shape {
            let (product, overflow) = need.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= data.count - body else {
                throw DataError(
                    "truncated: shape \(shape) of \(descr) needs more bytes than the file's \(data.count - body)",
                    path: path)
            }
            need = product
        }
        guard data.count - body >= need else {
            throw DataError(
                "truncated: shape \(shape) of \(descr) needs \(need) bytes, the file has \(data.count - body)",
                path: path)
        }
        return Array(dtype: dtype, shape: shape, bytes: Swift.Array(data[body..<(body + need)]))
    }

    /// Every `.npy` member of an `.npz`, by name without the extension.
    public static func readNPZ(_ path: String) throws(DataError) -> [String: Array] {
        try parseNPZ(try DataFile.read(path), path: path)
    }

    /// Every `.npy` member of an `.npz` held in memory.
    public static func parseNPZ(_ data: [UInt8], path: String) throws(DataError) -> [String: Array] {
        var out: [String: Array] = [:]
        for member in try Zip.members(data, path: path) where member.name.hasSuffix(".npy") {
            out[String(member.name.dropLast(4))] = try parseNPY(member.bytes, path: "\(path)[\(member.name)]")
        }
        return out
    }
}

/// Reading ZIP archives (what `.npz` is): the central directory, stored and deflated members,
/// ZIP64 sizes and offsets, CRC-32 checked.
enum Zip {
    struct Member {
        var name: String
        var bytes: [UInt8]
    }

    static func members(_ d: [UInt8], path: String) throws(DataError) -> [Member] {
        // Every offset and size comes from the file, so each read is bounds-checked (nil past the end)
        // and every sum is checked for overflow: a corrupt archive is an error, never a trap.
        func u16(_ i: Int) -> Int { i >= 0 && i <= d.count - 2 ? Int(d[i]) | Int(d[i + 1]) << 8 : -1 }
        func u32(_ i: Int) -> Int { i >= 0 && i <= d.count - 4 ? u16(i) | u16(i + 2) << 16 : -1 }
        func u64(_ i: Int) -> Int {
            guard i >= 0 && i <= d.count - 8 else { return -1 }
            let v = UInt64(u32(i)) | UInt64(u32(i + 4)) << 32
            return v <= UInt64(Int.max) ? Int(v) : -1
        }
        func fits(_ start: Int, _ length: Int) -> Bool {
            start >= 0 && length >= 0 && start <= d.count && length <= d.count - start
        }
        guard d.count >= 22 else { throw DataError("not a ZIP archive (too short)", path: path) }
        var eocd = -1
        var i = d.count - 22
        while i >= max(0, d.count - 22 - 65_535) {
            if u32(i) == 0x0605_4b50 {
                eocd = i
                break
            }
            i -= 1
        }
        guard eocd >= 0 else {
            throw DataError("not a ZIP archive (no end of central directory; truncated?)", path: path)
        }
        var count = u16(eocd + 10)
        var offset = u32(eocd + 16)
        if count == 0xFFFF || offset == 0xFFFF_FFFF, eocd >= 20, u32(eocd - 20) == 0x0706_4b50 {
            let z = u64(eocd - 20 + 8)
            guard fits(z, 56), u32(z) == 0x0606_4b50 else {
                throw DataError("corrupt ZIP64 end of central directory", path: path)
            }
            count = u64(z + 32)
            offset = u64(z + 48)
        }
        guard count >= 0, offset >= 0, count <= d.count / 46 else {
            throw DataError("corrupt ZIP end of central directory", path: path)
        }
        var out: [Member] = []
        var p = offset
        for _ in 0..<count {
            guard fits(p, 46), u32(p) == 0x0201_4b50 else {
                throw DataError("corrupt ZIP central directory at byte \(p)", path: path)
            }
            let method = u16(p + 10)
            let crc = UInt32(u32(p + 16))
            var compressed = u32(p + 20)
            var size = u32(p + 24)
            let nameLength = u16(p + 28)
            let extraLength = u16(p + 30)
            let commentLength = u16(p + 32)
            var local = u32(p + 42)
            guard fits(p + 46, nameLength + extraLength) else {
                throw DataError("corrupt ZIP central directory entry", path: path)
            }
            let name = String(decoding: d[(p + 46)..<(p + 46 + nameLength)], as: UTF8.self)
            // ZIP64 extra field: the 0xFFFFFFFF fields, in order size, compressed size, offset.
            var e = p + 46 + nameLength
            while e + 4 <= p + 46 + nameLength + extraLength, fits(e, 4) {
                let id = u16(e)
                let length = u16(e + 2)
                if id == 1 {
                    var q = e + 4
                    if size == 0xFFFF_FFFF {
                        size = u64(q)
                        q += 8
                    }
                    if compressed == 0xFFFF_FFFF {
                        compressed = u64(q)
                        q += 8
                    }
                    if local == 0xFFFF_FFFF { local = u64(q) }
                }
                e += 4 + length
            }
            guard fits(local, 30), u32(local) == 0x0403_4b50, compressed >= 0, size >= 0 else {
                throw DataError("corrupt ZIP: member \(name) has no local header", path: path)
            }
            let start = local + 30 + u16(local + 26) + u16(local + 28)
            guard fits(start, compressed) else {
                throw DataError(
                    "truncated: member \(name) needs \(compressed) bytes at \(start), the file has \(d.count)",
                    path: path)
            }
            let raw = Array(d[start..<(start + compressed)])
            let bytes: [UInt8]
            switch method {
            case 0: bytes = raw
            case 8: bytes = try Codecs.inflateRaw(raw, path: "\(path)[\(name)]")
            default:
                throw DataError(
                    "member \(name) uses ZIP compression method \(method); stored (0) and deflate (8) are supported",
                    path: path)
            }
            guard bytes.count == size else {
                throw DataError(
                    "member \(name) unpacks to \(bytes.count) bytes, the directory says \(size)", path: path)
            }
            guard crc32(bytes) == crc else {
                throw DataError("member \(name) fails its CRC-32 check (corrupt)", path: path)
            }
            out.append(Member(name: name, bytes: bytes))
            p += 46 + nameLength + extraLength + max(0, commentLength)
        }
        return out
    }

    static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
