/// A strict RFC 8259 JSON parser over UTF-8 bytes.
///
/// Duplicate member names are rejected (RFC 8785 requires it, and a schema or fixture with two
/// values for one key is a bug); lone surrogates and numbers beyond a double's range are errors.
public struct JSONParser {
    private let bytes: [UInt8]
    private var i = 0
    private let file: String
    private var depth = 0
    private static let maxDepth = 512

    public init(bytes: [UInt8], file: String = "<json>") {
        self.bytes = bytes
        self.file = file
    }

    public static func parse(_ text: String, file: String = "<json>") throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8), file: file)
    }

    public static func parse(_ bytes: [UInt8], file: String = "<json>") throws(JSONParseError) -> JSONValue {
        var p = JSONParser(bytes: bytes, file: file)
        p.skipWhitespace()
        let v = try p.value()
        p.skipWhitespace()
        guard p.i == p.bytes.count else { throw p.error("unexpected text after the JSON value") }
        return v
    }

    /// Zero or more JSON texts separated by whitespace (the yaml-test-suite's `in.json`).
    public static func parseStream(_ bytes: [UInt8], file: String = "<json>") throws(JSONParseError) -> [JSONValue] {
        var p = JSONParser(bytes: bytes, file: file)
        var out: [JSONValue] = []
        p.skipWhitespace()
        while p.i < p.bytes.count {
            out.append(try p.value())
            p.skipWhitespace()
        }
        return out
    }

    private func error(_ message: String) -> JSONParseError {
        var line = 1
        var column = 1
        for b in bytes[..<min(i, bytes.count)] {
            if b == 10 {
                line += 1
                column = 1
            } else if b & 0xC0 != 0x80 {
                column += 1
            }
        }
        return JSONParseError(mark: SourceMark(file: file, line: line, column: column), message: message)
    }

    private var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    private mutating func skipWhitespace() {
        while let c = peek, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 }
    }

    private mutating func expect(_ literal: String, _ v: JSONValue) throws(JSONParseError) -> JSONValue {
        let u = Array(literal.utf8)
        guard i + u.count <= bytes.count, Array(bytes[i..<i + u.count]) == u else { throw error("invalid literal") }
        i += u.count
        return v
    }

    private mutating func value() throws(JSONParseError) -> JSONValue {
        guard let c = peek else { throw error("unexpected end of input") }
        switch c {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try expect("true", .bool(true))
        case UInt8(ascii: "f"): return try expect("false", .bool(false))
        case UInt8(ascii: "n"): return try expect("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("unexpected character '\(Unicode.Scalar(c))'")
        }
    }

    private mutating func nest() throws(JSONParseError) {
        depth += 1
        if depth > Self.maxDepth { throw error("nesting deeper than \(Self.maxDepth)") }
    }

    private mutating func object() throws(JSONParseError) -> JSONValue {
        try nest()
        defer { depth -= 1 }
        i += 1
        var obj = JSONObject()
        skipWhitespace()
        if peek == UInt8(ascii: "}") {
            i += 1
            return .object(obj)
        }
        while true {
            skipWhitespace()
            guard peek == UInt8(ascii: "\"") else { throw error("expected a member name in double quotes") }
            let keyStart = i
            let key = try string()
            if obj[key] != nil {
                i = keyStart
                throw error("duplicate member name \"\(key)\"")
            }
            skipWhitespace()
            guard peek == UInt8(ascii: ":") else { throw error("expected ':'") }
            i += 1
            skipWhitespace()
            obj[key] = try value()
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "}"):
                i += 1
                return .object(obj)
            default: throw error("expected ',' or '}'")
            }
        }
    }

    private mutating func array() throws(JSONParseError) -> JSONValue {
        try nest()
        defer { depth -= 1 }
        i += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if peek == UInt8(ascii: "]") {
            i += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            items.append(try value())
            skipWhitespace()
            switch peek {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "]"):
                i += 1
                return .array(items)
            default: throw error("expected ',' or ']'")
            }
        }
    }

    private mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard i + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt32
            switch c {
            case 48...57: d = UInt32(c - 48)
            case 65...70: d = UInt32(c - 55)
            case 97...102: d = UInt32(c - 87)
            default: throw error("invalid hex digit in \\u escape")
            }
            v = v * 16 + d
            i += 1
        }
        return v
    }

    private mutating func string() throws(JSONParseError) -> String {
        i += 1
        var out: [UInt8] = []
        while true {
            guard let c = peek else { throw error("unterminated string") }
            i += 1
            switch c {
            case UInt8(ascii: "\""):
                guard let s = String(validating: out, as: UTF8.self) else { throw error("string is not valid UTF-8") }
                return s
            case UInt8(ascii: "\\"):
                guard let e = peek else { throw error("unterminated escape") }
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800...0xDBFF).contains(code) {
                        guard i + 6 <= bytes.count, bytes[i] == 0x5C, bytes[i + 1] == UInt8(ascii: "u") else {
                            throw error("lone surrogate \\u\(String(code, radix: 16))")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else {
                            throw error("lone surrogate \\u\(String(code, radix: 16))")
                        }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(code) {
                        throw error("lone surrogate \\u\(String(code, radix: 16))")
                    }
                    out.append(contentsOf: Array(String(Character(Unicode.Scalar(code)!)).utf8))
                default:
                    throw error("invalid escape \\\(Unicode.Scalar(e))")
                }
            case 0..<0x20:
                throw error("control character in string (escape it)")
            default:
                out.append(c)
            }
        }
    }

    private mutating func number() throws(JSONParseError) -> JSONValue {
        let start = i
        var isInteger = true
        if peek == UInt8(ascii: "-") { i += 1 }
        func digits(_ p: inout JSONParser) -> Int {
            var n = 0
            while let c = p.peek, c >= 48, c <= 57 {
                p.i += 1
                n += 1
            }
            return n
        }
        if peek == UInt8(ascii: "0") {
            i += 1
        } else if digits(&self) == 0 {
            throw error("invalid number")
        }
        if peek == UInt8(ascii: ".") {
            i += 1
            isInteger = false
            guard digits(&self) > 0 else { throw error("a decimal point needs digits after it") }
        }
        if let e = peek, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            i += 1
            isInteger = false
            if let s = peek, s == UInt8(ascii: "+") || s == UInt8(ascii: "-") { i += 1 }
            guard digits(&self) > 0 else { throw error("an exponent needs digits") }
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        if isInteger, let v = Int(text) { return .integer(v) }
        guard let d = Double(text), d.isFinite else {
            i = start
            throw error("number \(text) is out of the range of a double")
        }
        return .number(d)
    }
}

public struct JSONParseError: Error, Sendable, CustomStringConvertible {
    public var mark: SourceMark
    public var message: String
    public var description: String { "\(mark): \(message)" }
}
