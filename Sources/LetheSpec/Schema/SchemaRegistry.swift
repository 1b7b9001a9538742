/// Schemas known by URI: every resource (`$id`) and anchor (`$anchor`, `$dynamicAnchor`) indexed, so
/// `$ref` resolves without touching the network.
public struct SchemaRegistry: Sendable {
    struct Located: Sendable {
        var schema: JSONValue
        var base: String
    }

    private(set) var resources: [String: JSONValue] = [:]
    private(set) var anchors: [String: Located] = [:]

    public init() {}

    /// Keywords whose value is one schema, an array of schemas, or a map of name -> schema.
    static let singleSchemaKeywords: Set<String> = [
        "additionalProperties", "items", "contains", "not", "if", "then", "else", "propertyNames",
        "unevaluatedItems", "unevaluatedProperties", "contentSchema",
    ]
    static let schemaArrayKeywords: Set<String> = ["allOf", "anyOf", "oneOf", "prefixItems"]
    static let schemaMapKeywords: Set<String> = ["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"]

    /// Registers `schema` under `uri` (its `$id`, if it has one, wins).
    public mutating func register(_ schema: JSONValue, uri: String) {
        let base = schema["$id"]?.stringValue.map { URIReference.resolve($0, against: uri) } ?? uri
        let root = URIReference.split(base).base
        resources[root] = schema
        if root != uri { resources[URIReference.split(uri).base] = schema }
        index(schema, base: root)
    }

    private mutating func index(_ schema: JSONValue, base: String) {
        guard case .object(let obj) = schema else { return }
        var base = base
        if let id = obj["$id"]?.stringValue {
            base = URIReference.split(URIReference.resolve(id, against: base)).base
            resources[base] = schema
        }
        for key in ["$anchor", "$dynamicAnchor"] {
            if let anchor = obj[key]?.stringValue {
                anchors[base + "#" + anchor] = Located(schema: schema, base: base)
            }
        }
        for (key, value) in obj {
            if Self.singleSchemaKeywords.contains(key) {
                index(value, base: base)
            } else if Self.schemaArrayKeywords.contains(key), case .array(let items) = value {
                items.forEach { index($0, base: base) }
            } else if Self.schemaMapKeywords.contains(key), case .object(let map) = value {
                map.forEach { index($0.value, base: base) }
            }
        }
    }

    /// The schema a reference names, with the base URI that applies inside it.
    func resolve(_ reference: String, base: String) -> Located? {
        let absolute = URIReference.resolve(reference, against: base)
        let (uri, fragment) = URIReference.split(absolute)
        guard let resource = resources[uri] else { return nil }
        guard let fragment, !fragment.isEmpty else { return Located(schema: resource, base: uri) }
        if fragment.hasPrefix("/") {
            guard let pointer = try? JSONPointer(parsing: fragment) else { return nil }
            return walk(resource, base: uri, pointer: pointer)
        }
        return anchors[uri + "#" + fragment]
    }

    /// Follows a JSON pointer inside a resource, picking up any `$id` it passes.
    private func walk(_ root: JSONValue, base: String, pointer: JSONPointer) -> Located? {
        var current = root
        var base = base
        for token in pointer.tokens {
            switch current {
            case .object(let o):
                guard let next = o[token] else { return nil }
                current = next
            case .array(let a):
                guard let i = Int(token), a.indices.contains(i) else { return nil }
                current = a[i]
            default:
                return nil
            }
            if let id = current["$id"]?.stringValue {
                base = URIReference.split(URIReference.resolve(id, against: base)).base
            }
        }
        return Located(schema: current, base: base)
    }
}
