import ArgumentParser

/// Output formats for tables: aligned text for terminals, Markdown for pull requests, CSV for tools.
enum TableFormat: String, ExpressibleByArgument, CaseIterable {
    case text, md, csv
}

struct TextTable {
    var headers: [String]
    var rows: [[String]]
    /// Columns after the first are right-aligned in text and Markdown.
    func render(_ format: TableFormat) -> String {
        switch format {
        case .csv:
            func cell(_ s: String) -> String {
                s.contains(where: { ",\"\n".contains($0) })
                    ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
            }
            return ([headers] + rows).map { $0.map(cell).joined(separator: ",") }.joined(separator: "\n")
        case .md:
            let escaped = rows.map { $0.map { $0.replacingOccurrences(of: "|", with: "\\|") } }
            return
                ([
                    "| " + headers.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ")
                        + " |", "|" + headers.indices.map { $0 == 0 ? "---|" : "---:|" }.joined(),
                ]
                + escaped.map { "| " + $0.joined(separator: " | ") + " |" }).joined(separator: "\n")
        case .text:
            let widths = headers.indices.map { c in ([headers] + rows).map { c < $0.count ? $0[c].count : 0 }.max() ?? 0
            }
            func line(_ r: [String]) -> String {
                r.enumerated().map { c, s in
                    let pad = String(repeating: " ", count: max(0, widths[c] - s.count))
                    return c == 0 ? s + pad : pad + s
                }.joined(separator: "  ")
            }
            return
                ([line(headers), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
                + rows.map(line)).joined(separator: "\n")
        }
    }
}

/// Numbers in tables: four significant digits, "-" when absent.
func cell(_ x: Double?) -> String {
    guard let x else { return "-" }
    if !x.isFinite { return "\(x)" }
    return abs(x) >= 1000 ? String(format: "%.1f", x) : String(format: "%.4g", x)
}
