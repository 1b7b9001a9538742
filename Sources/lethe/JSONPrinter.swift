import LetheRuns
import LetheSpec

/// Human-readable renderings of JSON values for the terminal.
enum JSONPrinter {
    static func pretty(_ v: JSONValue) -> String { JSONText.pretty(v) }

    /// A YAML-like outline in source order, for reading a resolved spec.
    static func yamlish(_ v: JSONValue, indent: Int) -> String {
        let pad = String(repeating: "  ", count: indent)
        guard case .object(let o) = v else { return pad + JSONText.scalar(v) }
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
