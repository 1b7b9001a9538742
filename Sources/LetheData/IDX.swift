import Foundation

/// The IDX format of MNIST and Fashion-MNIST: a magic number naming the element type and rank, the
/// dimensions as big-endian u32, then the data, optionally gzip-compressed. Lethe reads unsigned-byte
/// files (type 0x08) of rank 1 (labels) and 3 (images), strictly: a size that does not match the
/// header is an error, never a silent truncation.
public enum IDX {
    public struct Array: Sendable {
        public var dimensions: [Int]
        public var bytes: [UInt8]
    }

    public static func read(_ path: String) throws(DataError) -> Array {
        var bytes = try DataFile.read(path)
        if bytes.starts(with: [0x1F, 0x8B]) { bytes = try Codecs.gunzip(bytes, path: path) }
        return try parse(bytes, path: path)
    }

    public static func parse(_ bytes: [UInt8], path: String) throws(DataError) -> Array {
        guard bytes.count >= 4 else {
            throw DataError("IDX: \(bytes.count) bytes is too short for a header", path: path)
        }
        guard bytes[0] == 0, bytes[1] == 0 else {
            throw DataError("IDX: bad magic number (the first two bytes must be 0)", path: path)
        }
        guard bytes[2] == 0x08 else {
            throw DataError(
                "IDX: element type 0x\(String(bytes[2], radix: 16)) is not unsigned byte (0x08)", path: path)
        }
        let rank = Int(bytes[3])
        guard rank == 1 || rank == 3 else {
            throw DataError("IDX: rank \(rank); labels have rank 1 and images rank 3", path: path)
        }
        let headerSize = 4 + 4 * rank
        guard bytes.count >= headerSize else { throw DataError("IDX: truncated header", path: path) }
        var dims: [Int] = []
        for d in 0..<rank {
            let o = 4 + 4 * d
            dims.append(Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]))
        }
        var expected = 1
        for d in dims {
            let (product, overflow) = expected.multipliedReportingOverflow(by: d)
            guard !overflow, product <= bytes.count else {
                throw DataError(
                    "IDX: the header's dimensions \(dims.map(String.init).joined(separator: "x")) describe more data than the file holds (\(bytes.count - headerSize) bytes)",
                    path: path)
            }
            expected = product
        }
        let found = bytes.count - headerSize
        guard found == expected else {
            let what = found < expected ? "truncated" : "has \(found - expected) bytes past its end"
            throw DataError(
                "IDX: \(what): the header says \(dims.map(String.init).joined(separator: "x")) = \(expected) bytes of data, the file holds \(found)",
                path: path)
        }
        return Array(dimensions: dims, bytes: Swift.Array(bytes[headerSize...]))
    }
}
