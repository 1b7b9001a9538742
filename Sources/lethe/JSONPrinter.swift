import LetheSpec

/// Human-readable renderings of JSON values for the terminal.
enum JSONPrinter {
    /// Indented JSON with members in canonical (sorted) order, so two plans diff cleanly.
    static func pretty(_ v: JSONValue, indent: Int = 0) -> String {
        let pad = String(repeating: "  ", count: indent)
        let inner = String(repeating: "  ", count: indent + 1)
        switch v {
        case .array(let items) where items.isEmpty: return "[]"
        case .object(let o) where o.isEmpty: return "{}"
        case .array(let items) where items.allSatisfy({ $0.arrayValue == nil && $0.objectValue == nil }):
            return "[" + items.map { scalar($0) }.joined(separator: ", ") + "]"
        case .array(let items):
            return "[\n" + items.map { inner + pretty($0, indent: indent + 1) }.joined(separator: ",\n") + "\n" + pad + "]"
        case .object(let o):
            let keys = o.keys.sorted { $0.utf16.lexicographicallyPrecedes($1.utf16) }
            return "{\n" + keys.map { inner + scalar(.string($0)) + ": " + pretty(o[$0]!, indent: indent + 1) }.joined(separator: ",\n") + "\n" + pad + "}"
        default:
            return scalar(v)
        }
    }

    static func scalar(_ v: JSONValue) -> String {
        (try? CanonicalJSON.string(v)) ?? "null"
    }

    /// A YAML-like outline in source order, for reading a resolved spec.
    static func yamlish(_ v: JSONValue, indent: Int) -> String {
        let pad = String(repeating: "  ", count: indent)
        guard case .object(let o) = v else { return pad + scalar(v) }
        var lines: [String] = []
        for (k, value) in o {
            switch value {
            case .object(let child) where !child.isEmpty:
                lines.append("\(pad)\(k):")
                lines.append(yamlish(value, indent: indent + 1))
            default:
                lines.append("\(pad)\(k): \(pretty(value))")
            }
        }
        return lines.joined(separator: "\n")
    }
}
