import Foundation
import Testing
@testable import LetheSpec

/// Every property the schemas define is read by a typed field of `RunSpec` (and nothing else exists
/// in the typed spec): a schema field that no code reads, or a typed field the schema lacks, fails.
@Suite struct SchemaCoverageTests {
    let schema = RunSpecSchema.embedded

    /// The schema at `value`, with `$ref` followed.
    func resolved(_ value: JSONValue, base: String) -> (JSONValue, String) {
        guard let ref = value["$ref"]?.stringValue, let target = schema.registry.resolve(ref, base: base) else {
            return (value, base)
        }
        return resolved(target.schema, base: target.base)
    }

    /// Every property schema of an object schema, including those `allOf` / `then` / `else` add.
    func properties(_ s: JSONValue, base: String) -> [(String, JSONValue, String)] {
        var out: [(String, JSONValue, String)] = []
        for (name, sub) in s["properties"]?.objectValue ?? JSONObject() where sub.objectValue != nil {
            let (r, b) = resolved(sub, base: base)
            out.append((name, r, b))
        }
        for branch in (s["allOf"]?.arrayValue ?? []) + [s["then"], s["else"]].compactMap({ $0 }) {
            out += properties(branch, base: base)
        }
        return out
    }

    /// Paths of every property (`data.forget.index_file`), and a sample value that fills each.
    func walk(_ s: JSONValue, base: String, path: String, paths: inout Set<String>) -> JSONValue {
        if let c = s["const"] { return c }
        if let e = s["enum"]?.arrayValue?.first { return e }
        let types = s["type"]?.arrayValue?.compactMap(\.stringValue) ?? [s["type"]?.stringValue].compactMap { $0 }
        let type = types.first { $0 != "null" } ?? (s["properties"] != nil ? "object" : "number")
        switch type {
        case "object":
            var o = JSONObject()
            for (name, sub, b) in properties(s, base: base) where name != "$schema" {
                let child = path.isEmpty ? name : path + "." + name
                paths.insert(child)
                let value = walk(sub, base: b, path: child, paths: &paths)
                if o[name] == nil || o[name] == .null { o[name] = value }
            }
            return .object(o)
        case "array":
            if let prefix = s["prefixItems"]?.arrayValue {
                return .array(prefix.map { walk(resolved($0, base: base).0, base: base, path: path, paths: &paths) })
            }
            let item = s["items"].map { resolved($0, base: base) }
            return .array([item.map { walk($0.0, base: $0.1, path: path, paths: &paths) } ?? .number(0.5)])
        case "string": return .string("x")
        case "integer": return .integer(1)
        case "boolean": return .bool(false)
        default: return .number(0.5)
        }
    }

    /// Paths of every stored property of `value`, snake_cased as the schema spells them.
    func typedPaths(_ value: Any, path: String, into out: inout Set<String>) {
        for child in Mirror(reflecting: value).children {
            guard let label = child.label else { continue }
            let name = label.reduce(into: "") { s, c in s += c.isUppercase ? "_" + c.lowercased() : String(c) }
            let p = path.isEmpty ? name : path + "." + name
            out.insert(p)
            var v: Any = child.value
            let optional = Mirror(reflecting: v)
            if optional.displayStyle == .optional {
                guard let wrapped = optional.children.first?.value else { continue }
                v = wrapped
            }
            if Mirror(reflecting: v).displayStyle == .collection,
                let first = Mirror(reflecting: v).children.first?.value,
                Mirror(reflecting: first).displayStyle == .struct
            {
                v = first
            }
            if Mirror(reflecting: v).displayStyle == .struct { typedPaths(v, path: p, into: &out) }
        }
    }

    @Test func everySchemaPropertyHasATypedField() throws {
        let root = try #require(schema.registry.resolve(RunSpecSchema.rootURI, base: RunSpecSchema.rootURI))
        var schemaPaths = Set<String>()
        let sample = walk(root.schema, base: root.base, path: "", paths: &schemaPaths)
        let spec = try RunSpec.decode(sample)
        var typed = Set<String>()
        typedPaths(spec, path: "", into: &typed)
        #expect(schemaPaths.subtracting(typed).sorted() == [], "schema properties no typed field reads")
        #expect(typed.subtracting(schemaPaths).sorted() == [], "typed fields the schema does not define")
        #expect(schemaPaths.count > 60, "the walk reached the nested schemas (\(schemaPaths.count) paths)")
    }

    /// Every `enum` of the schemas, by property path, with its values.
    func enums(_ s: JSONValue, base: String, path: String, into out: inout [(String, [String])]) {
        if let values = s["enum"]?.arrayValue?.compactMap(\.stringValue), !values.isEmpty {
            out.append((path, values))
        }
        if let items = s["items"] {
            let (r, b) = resolved(items, base: base)
            enums(r, base: b, path: path, into: &out)
        }
        for (name, sub, b) in properties(s, base: base) where name != "$schema" {
            enums(sub, base: b, path: path.isEmpty ? name : path + "." + name, into: &out)
        }
    }

    /// `value` with the member at dotted `path` replaced by `new` (through the first item of arrays;
    /// an array of enum values becomes `[new]`).
    func setting(_ value: JSONValue, _ path: ArraySlice<String>, to new: JSONValue) -> JSONValue {
        if case .array(let items) = value {
            if path.isEmpty { return .array([new]) }
            return .array([setting(items.first ?? .object(JSONObject()), path, to: new)])
        }
        guard let key = path.first else { return new }
        var o = value.objectValue ?? JSONObject()
        o[key] = setting(o[key] ?? .object(JSONObject()), path.dropFirst(), to: new)
        return .object(o)
    }

    /// The raw values of every enum member (`RawRepresentable` with a String raw value) found under
    /// the typed path.
    func typedRawValues(_ value: Any, path: ArraySlice<String>) -> [String] {
        var v: Any = value
        let optional = Mirror(reflecting: v)
        if optional.displayStyle == .optional {
            guard let wrapped = optional.children.first?.value else { return [] }
            v = wrapped
        }
        if let raw = v as? any RawRepresentable, path.isEmpty, let s = raw.rawValue as? String { return [s] }
        let mirror = Mirror(reflecting: v)
        if mirror.displayStyle == .collection {
            return mirror.children.flatMap { typedRawValues($0.value, path: path) }
        }
        guard let key = path.first else { return [] }
        let camel = key.split(separator: "_").enumerated().map { $0 == 0 ? String($1) : $1.capitalized }.joined()
        return mirror.children.filter { $0.label == camel }.flatMap { typedRawValues($0.value, path: path.dropFirst()) }
    }

    /// Every value of every schema enum reaches its own typed case: set into a spec, it decodes, and
    /// the typed field holds exactly that value. A value the code does not know (or maps onto another
    /// value's case, as an ignored option would be) fails here; the executors switch exhaustively on
    /// the typed enums, so every case is handled.
    @Test func everyEnumValueOfTheSchemasIsHonoured() throws {
        let root = try #require(schema.registry.resolve(RunSpecSchema.rootURI, base: RunSpecSchema.rootURI))
        var paths = Set<String>()
        let sample = walk(root.schema, base: root.base, path: "", paths: &paths)
        var found: [(String, [String])] = []
        enums(root.schema, base: root.base, path: "", into: &found)
        #expect(found.count > 15, "the walk reached the enums (\(found.count))")
        for (path, values) in found {
            for value in values {
                let keys = ArraySlice(path.split(separator: ".").map(String.init))
                let spec = try RunSpec.decode(setting(sample, keys, to: .string(value)))
                #expect(
                    typedRawValues(spec, path: keys).contains(value), "\(path): \(value) is not read as its own case")
            }
        }
    }

    /// Every shipped config decodes, and the typed values are the resolved JSON's.
    @Test func shippedConfigsDecodeToTheResolvedValues() throws {
        for file in Repo.runSpecConfigs {
            let plan = try Planner(workingDirectory: Repo.path(".")).plan(specPath: Repo.path("configs/" + file))
            #expect(plan.spec.kind.rawValue == plan.resolved["kind"]?.stringValue, "\(file)")
            #expect(plan.spec.train.steps == plan.resolved["train"]?["steps"]?.intValue, "\(file)")
            #expect(plan.spec.data.imageSize == plan.resolved["data"]?["image_size"]?.intValue, "\(file)")
            #expect(plan.spec.unlearn?.alpha == plan.resolved["unlearn"]?["alpha"]?.doubleValue, "\(file)")
            #expect(
                plan.spec.evaluate.metrics.map(\.rawValue)
                    == plan.resolved["evaluate"]?["metrics"]?.arrayValue?.compactMap(\.stringValue), "\(file)")
        }
    }
}
