/// Resolution of plain scalars by the YAML 1.2 core schema (spec section 10.3.2).
///
/// `yes`, `no`, `on`, `off` stay strings (they were booleans only in YAML 1.1); `0o17` is octal,
/// `0x1F` hex; `.inf`, `-.Inf`, `.nan` are floats; `~`, `null` and the empty scalar are null.
enum CoreSchema {
    static func resolvePlain(_ text: String) -> YAMLNode.Value {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .float(.infinity)
        case "-.inf", "-.Inf", "-.INF": return .float(-.infinity)
        case ".nan", ".NaN", ".NAN": return .float(.nan)
        default: break
        }
        if let value = integer(text) { return value }
        if isFloat(text), let d = Double(text) { return .float(d) }
        return .string(text)
    }

    /// `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`; integers past Int64 become floats, as they would in JSON.
    static func integer(_ text: String) -> YAMLNode.Value? {
        let u = Array(text.utf8)
        guard !u.isEmpty else { return nil }
        func allDigits(_ s: ArraySlice<UInt8>, _ ok: (UInt8) -> Bool) -> Bool { !s.isEmpty && s.allSatisfy(ok) }
        let isDec: (UInt8) -> Bool = { $0 >= 48 && $0 <= 57 }
        if u.count > 2, u[0] == 48, u[1] == UInt8(ascii: "o") {
            let body = u[2...]
            guard allDigits(body, { $0 >= 48 && $0 <= 55 }) else { return nil }
            if let v = Int(String(decoding: body, as: UTF8.self), radix: 8) { return .int(v) }
            return .float(octalAsDouble(body))
        }
        if u.count > 2, u[0] == 48, u[1] == UInt8(ascii: "x") {
            let body = u[2...]
            guard allDigits(body, { isDec($0) || ($0 >= 65 && $0 <= 70) || ($0 >= 97 && $0 <= 102) }) else {
                return nil
            }
            if let v = Int(String(decoding: body, as: UTF8.self), radix: 16) { return .int(v) }
            return .float(body.reduce(0.0) { $0 * 16 + Double(hexDigit($1)) })
        }
        let digits = (u[0] == 43 || u[0] == 45) ? u[1...] : u[0...]
        guard allDigits(digits, isDec) else { return nil }
        if let v = Int(text) { return .int(v) }
        return Double(text).map { .float($0) }
    }

    /// Whether `text` is an integer literal (decimal, `0o` octal or `0x` hex) too large for Int64.
    static func overflowsInt64(_ text: String) -> Bool {
        guard let value = integer(text) else { return false }
        switch value {
        case .int: return false
        default: return true
        }
    }

    private static func octalAsDouble(_ body: ArraySlice<UInt8>) -> Double {
        body.reduce(0.0) { $0 * 8 + Double($1 - 48) }
    }

    private static func hexDigit(_ c: UInt8) -> Int {
        switch c {
        case 48...57: return Int(c - 48)
        case 65...70: return Int(c - 55)
        default: return Int(c - 87)
        }
    }

    /// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
    static func isFloat(_ text: String) -> Bool {
        var u = Array(text.utf8)[...]
        if let f = u.first, f == 43 || f == 45 { u = u.dropFirst() }
        func digits() -> Int {
            var n = 0
            while let c = u.first, c >= 48, c <= 57 {
                u = u.dropFirst()
                n += 1
            }
            return n
        }
        let intDigits = digits()
        var fracDigits = 0
        if u.first == 46 {
            u = u.dropFirst()
            fracDigits = digits()
            if intDigits == 0 && fracDigits == 0 { return false }
        } else if intDigits == 0 {
            return false
        }
        if let e = u.first, e == 101 || e == 69 {
            u = u.dropFirst()
            if let s = u.first, s == 43 || s == 45 { u = u.dropFirst() }
            if digits() == 0 { return false }
        }
        return u.isEmpty
    }
}
