/// Where each value (and each member name) of a JSON tree came from in its YAML source.
public struct SourceMap: Sendable {
    public var values: [JSONPointer: SourceMark] = [:]
    public var keys: [JSONPointer: SourceMark] = [:]

    public init() {}

    /// The best place to point at for a problem at `pointer`: the value itself, else the nearest
    /// enclosing value that was written (a missing key is reported at its parent).
    public func mark(for pointer: JSONPointer, key: Bool = false) -> SourceMark? {
        if key, let m = keys[pointer] { return m }
        var p = pointer
        while true {
            if let m = values[p] { return m }
            if p.tokens.isEmpty { return nil }
            p = p.parent
        }
    }

    public mutating func merge(_ other: SourceMap) {
        values.merge(other.values) { $1 }
        keys.merge(other.keys) { $1 }
    }
}

extension YAMLNode {
    /// The JSON value of this node and the source mark of every value in it.
    public func toJSON() throws(YAMLError) -> (JSONValue, SourceMap) {
        var map = SourceMap()
        let value = try Self.convert(self, at: .root, map: &map)
        return (value, map)
    }

    private static func convert(_ node: YAMLNode, at path: JSONPointer, map: inout SourceMap) throws(YAMLError)
        -> JSONValue
    {
        map.values[path] = node.mark
        switch node.value {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .integer(i)
        case .float(let d): return .number(d)
        case .string(let s): return .string(s)
        case .sequence(let items):
            var out: [JSONValue] = []
            out.reserveCapacity(items.count)
            for (i, item) in items.enumerated() { out.append(try convert(item, at: path.appending(i), map: &map)) }
            return .array(out)
        case .mapping(let pairs):
            var obj = JSONObject()
            for pair in pairs {
                guard let name = pair.key.keyText else {
                    throw YAMLError("a key must be a scalar, not a sequence or mapping", at: pair.key.mark)
                }
                let child = path.appending(name)
                if obj[name] != nil {
                    throw YAMLError("duplicate key '\(name)'", at: pair.key.mark)
                }
                map.keys[child] = pair.key.mark
                obj[name] = try convert(pair.value, at: child, map: &map)
            }
            return .object(obj)
        }
    }
}
