/// A command-line override in the usual `--set unlearn.alpha=0.5` form. The value is YAML, so
/// `--set data.forget.classes=[0,1,2]` and `--set model.checkpoint=w.safetensors` both work.
public struct Override: Sendable, Hashable {
    public var path: [String]
    public var valueText: String
    public var source: String
    /// Where the value was written when it did not come from the command line (a sweep's grid value).
    public var origin: SourceMark?

    /// `path` set to `value` (rendered as JSON, which YAML reads back as the same value), placed at
    /// `origin` in error messages: a sweep member's setting.
    public init(path: [String], value: JSONValue, origin: SourceMark?) {
        self.path = path
        self.valueText = (try? CanonicalJSON.string(value)) ?? "null"
        self.source = path.joined(separator: ".") + "=" + valueText
        self.origin = origin
    }

    /// The override as `lethe run` takes it: `key.path=value`.
    public var argument: String { source }

    public init(parsing text: String) throws(SpecError) {
        let origin = SourceMark(file: "--set", line: 1, column: 1)
        guard let eq = text.firstIndex(of: "=") else {
            throw SpecError("override '\(text)' needs the form KEY.PATH=VALUE", mark: origin)
        }
        let key = text[..<eq]
        let path = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !key.isEmpty, path.allSatisfy({ !$0.isEmpty }) else {
            throw SpecError("override '\(text)' has an empty key segment", mark: origin)
        }
        self.path = path
        self.valueText = String(text[text.index(after: eq)...])
        self.source = text
        self.origin = nil
    }

    /// Where the value starts, for error marks: `--set:1:<column of the value>`.
    var valueMark: SourceMark {
        origin ?? SourceMark(file: "--set \(source)", line: 1, column: path.joined(separator: ".").count + 2)
    }

    /// Applies the override to a YAML tree, creating mappings on the way as needed.
    public func apply(to root: YAMLNode) throws(SpecError) -> YAMLNode {
        let parsed: YAMLNode
        do {
            parsed = try YAMLLoader.loadDocument(Array(valueText.utf8), file: origin?.file ?? "--set \(source)")
        } catch {
            throw SpecError("override value: \(error.message)", at: JSONPointer(path), mark: error.mark)
        }
        var value = parsed
        value.restamp(valueMark)
        return try Self.set(value, at: path[...], in: root, prefix: JSONPointer())
    }

    private static func set(_ value: YAMLNode, at path: ArraySlice<String>, in node: YAMLNode, prefix: JSONPointer)
        throws(SpecError) -> YAMLNode
    {
        guard let head = path.first else { return value }
        let here = prefix.appending(head)
        var node = node
        switch node.value {
        case .mapping(var pairs):
            if let i = pairs.firstIndex(where: { $0.key.keyText == head }) {
                pairs[i].value = try set(value, at: path.dropFirst(), in: pairs[i].value, prefix: here)
            } else {
                let empty = YAMLNode(.mapping([]), mark: value.mark)
                let key = YAMLNode(.string(head), mark: value.mark, text: head)
                pairs.append(.init(key: key, value: try set(value, at: path.dropFirst(), in: empty, prefix: here)))
            }
            node.value = .mapping(pairs)
        case .sequence(var items):
            guard let i = Int(head), items.indices.contains(i) else {
                throw SpecError(
                    "override: '\(head)' is not an index of this \(items.count)-item list", at: here, mark: node.mark)
            }
            items[i] = try set(value, at: path.dropFirst(), in: items[i], prefix: here)
            node.value = .sequence(items)
        case .null:
            node = YAMLNode(.mapping([]), mark: node.mark)
            return try set(value, at: path, in: node, prefix: prefix)
        default:
            throw SpecError("override: \(prefix) is a scalar, so it has no key '\(head)'", at: here, mark: node.mark)
        }
        return node
    }
}

extension YAMLNode {
    /// Gives this node and everything in it one source mark (values that came from the command line).
    mutating func restamp(_ mark: SourceMark) {
        self.mark = mark
        switch value {
        case .sequence(var items):
            for i in items.indices { items[i].restamp(mark) }
            value = .sequence(items)
        case .mapping(var pairs):
            for i in pairs.indices {
                pairs[i].key.restamp(mark)
                pairs[i].value.restamp(mark)
            }
            value = .mapping(pairs)
        default:
            break
        }
    }
}
