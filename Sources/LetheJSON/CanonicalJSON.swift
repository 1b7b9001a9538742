/// The JSON Canonicalization Scheme (RFC 8785): the exact bytes a config hash is taken over.
///
/// Members sorted by UTF-16 code units, no insignificant whitespace, minimal string escapes, and
/// numbers as ECMAScript prints them, so `1e-4`, `0.0001` and `1.0e-04` all become `0.0001`.
public enum CanonicalJSON {
    public static func string(_ value: JSONValue) throws(CanonicalJSONError) -> String {
        var out = ""
        try write(value, into: &out, at: .root)
        return out
    }

    public static func bytes(_ value: JSONValue) throws(CanonicalJSONError) -> [UInt8] {
        Array(try string(value).utf8)
    }

    private static func write(_ value: JSONValue, into out: inout String, at path: JSONPointer)
        throws(CanonicalJSONError)
    {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .integer(let i): out += ES6Number.format(Double(i))
        case .number(let d):
            guard d.isFinite else { throw CanonicalJSONError(path: path, message: "\(d) has no JSON form") }
            out += ES6Number.format(d)
        case .string(let s): writeString(s, into: &out)
        case .array(let items):
            out += "["
            for (n, item) in items.enumerated() {
                if n > 0 { out += "," }
                try write(item, into: &out, at: path.appending(n))
            }
            out += "]"
        case .object(let obj):
            out += "{"
            let sorted = obj.keys.sorted { $0.utf16.lexicographicallyPrecedes($1.utf16) }
            for (n, key) in sorted.enumerated() {
                if n > 0 { out += "," }
                writeString(key, into: &out)
                out += ":"
                try write(obj[key]!, into: &out, at: path.appending(key))
            }
            out += "}"
        }
    }

    /// `s` as a JSON string with RFC 8785's minimal escapes.
    public static func quoted(_ s: String) -> String {
        var out = ""
        writeString(s, into: &out)
        return out
    }

    static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{00}"..."\u{1F}":
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

public struct CanonicalJSONError: Error, Sendable, CustomStringConvertible {
    public var path: JSONPointer
    public var message: String
    public var description: String { "\(path): \(message)" }
}

/// ECMAScript `Number.prototype.toString` for doubles (ECMA-262 Number::toString), built on Swift's
/// shortest round-trip digits.
public enum ES6Number {
    public static func format(_ value: Double) -> String {
        if value == 0 { return "0" }
        if value < 0 { return "-" + format(-value) }
        let (digits, n) = shortestDigits(value)
        let k = digits.count
        if k <= n && n <= 21 {
            return digits + String(repeating: "0", count: n - k)
        }
        if 0 < n && n <= 21 {
            let cut = digits.index(digits.startIndex, offsetBy: n)
            return digits[..<cut] + "." + digits[cut...]
        }
        if -6 < n && n <= 0 {
            return "0." + String(repeating: "0", count: -n) + digits
        }
        let exponent = n - 1
        let mantissa = k == 1 ? digits : digits.prefix(1) + "." + digits.dropFirst()
        return mantissa + "e" + (exponent < 0 ? "-" : "+") + String(abs(exponent))
    }

    /// Digits d1...dk (no leading or trailing zeros) and n with value = 0.d1...dk x 10^n.
    static func shortestDigits(_ value: Double) -> (String, Int) {
        let text = value.description
        var mantissa = Substring(text)
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = text[..<e]
            exponent = Int(text[text.index(after: e)...])!
        }
        var intPart = mantissa
        var fracPart: Substring = ""
        if let dot = mantissa.firstIndex(of: ".") {
            intPart = mantissa[..<dot]
            fracPart = mantissa[mantissa.index(after: dot)...]
        }
        var all = String(intPart + fracPart)
        var pointAt = intPart.count + exponent
        while all.hasPrefix("0") {
            all.removeFirst()
            pointAt -= 1
        }
        while all.hasSuffix("0") { all.removeLast() }
        return (all, pointAt)
    }
}
