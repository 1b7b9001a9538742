import CImageIO
import Foundation

/// gzip through zlib, and PNG through libpng, with errors as `DataError`s.
public enum Codecs {
    public static func gunzip(_ bytes: [UInt8], path: String) throws(DataError) -> [UInt8] {
        try inflate(bytes, path: path, what: "gzip", lethe_gunzip)
    }

    /// Raw deflate, as ZIP (and so .npz) members are stored.
    public static func inflateRaw(_ bytes: [UInt8], path: String) throws(DataError) -> [UInt8] {
        try inflate(bytes, path: path, what: "deflate", lethe_inflate_raw)
    }

    typealias Inflater = (
        UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?, UnsafeMutablePointer<Int>?,
        UnsafeMutablePointer<CChar>?, Int
    ) -> Int32

    static func inflate(_ bytes: [UInt8], path: String, what: String, _ inflater: Inflater) throws(DataError) -> [UInt8]
    {
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: 256)
        let rc = bytes.withUnsafeBufferPointer {
            inflater($0.baseAddress, $0.count, &out, &length, &message, message.count)
        }
        guard rc == 0, let out else { throw DataError("\(what): " + text(message), path: path) }
        defer { lethe_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: length))
    }

    /// 8-bit pixels, rows top to bottom, `channels` interleaved (1: grey, 3: RGB).
    public struct Image: Sendable, Equatable {
        public var width: Int, height: Int, channels: Int
        public var pixels: [UInt8]
        public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
            precondition(pixels.count == width * height * channels)
            self.width = width
            self.height = height
            self.channels = channels
            self.pixels = pixels
        }
    }

    public static func writePNG(_ image: Image, to path: String) throws(DataError) {
        var message = [CChar](repeating: 0, count: 256)
        let rc = image.pixels.withUnsafeBufferPointer {
            lethe_png_write(
                path, $0.baseAddress, Int32(image.width), Int32(image.height), Int32(image.channels), &message,
                message.count)
        }
        guard rc == 0 else { throw DataError("PNG: " + text(message), path: path) }
    }

    public static func readPNG(_ path: String) throws(DataError) -> Image {
        try decodePNG(try DataFile.read(path), path: path)
    }

    /// A PNG from its bytes: grey stays one channel, everything else becomes RGB; 16-bit samples are
    /// reduced to 8, alpha is dropped, interlacing undone.
    public static func decodePNG(_ bytes: [UInt8], path: String) throws(DataError) -> Image {
        var pixels: UnsafeMutablePointer<UInt8>?
        var w: Int32 = 0
        var h: Int32 = 0
        var c: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let rc = bytes.withUnsafeBufferPointer {
            lethe_png_decode($0.baseAddress, $0.count, &pixels, &w, &h, &c, &message, message.count)
        }
        guard rc == 0, let pixels else {
            throw DataError("PNG: " + text(message), path: path)
        }
        defer { lethe_free(pixels) }
        return Image(
            width: Int(w), height: Int(h), channels: Int(c),
            pixels: Array(UnsafeBufferPointer(start: pixels, count: Int(w) * Int(h) * Int(c))))
    }

    /// The NUL-terminated message a C helper wrote into `buffer`.
    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
