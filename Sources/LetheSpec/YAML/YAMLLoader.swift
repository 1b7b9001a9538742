import CYAML

/// Loads YAML through libyaml, event by event, into `YAMLNode` trees.
///
/// libyaml parses the syntax; everything that gives the nodes their meaning lives here: YAML 1.2 core
/// schema resolution, tags, anchors and aliases (bounded), merge keys `<<`, duplicate-key errors.
public enum YAMLLoader {
    /// Every document in the stream.
    public static func loadStream(_ bytes: [UInt8], file: String, limits: YAMLLimits = .spec) throws(YAMLError) -> [YAMLNode] {
        var builder = TreeBuilder(file: file, limits: limits)
        return try loadStream(bytes, file: file, limits: limits, into: &builder)
    }

    private static func loadStream(_ bytes: [UInt8], file: String, limits: YAMLLimits, into builder: inout TreeBuilder) throws(YAMLError) -> [YAMLNode] {
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else {
            throw YAMLError("libyaml could not initialise a parser", at: SourceMark(file: file, line: 1, column: 1))
        }
        defer { yaml_parser_delete(parser) }
        let result: Result<Void, YAMLError> = bytes.withUnsafeBufferPointer { buffer in
            yaml_parser_set_input_string(parser, buffer.baseAddress ?? UnsafePointer(bitPattern: 1), buffer.count)
            var event = yaml_event_t()
            while true {
                guard yaml_parser_parse(parser, &event) == 1 else {
                    return .failure(parserError(parser.pointee, file: file))
                }
                defer { yaml_event_delete(&event) }
                if event.type == YAML_STREAM_END_EVENT { return .success(()) }
                do throws(YAMLError) { try builder.handle(event) } catch { return .failure(error) }
            }
        }
        try result.get()
        return builder.documents
    }

    /// Exactly one document: a run spec is one value, so `---` twice is a mistake worth naming.
    public static func loadDocument(_ bytes: [UInt8], file: String, limits: YAMLLimits = .spec) throws(YAMLError) -> YAMLNode {
        var builder = TreeBuilder(file: file, limits: limits)
        let docs = try loadStream(bytes, file: file, limits: limits, into: &builder)
        guard docs.count == 1 else {
            let mark = docs.count > 1 ? builder.documentStarts[1] : SourceMark(file: file, line: 1, column: 1)
            throw YAMLError(docs.isEmpty ? "the file holds no YAML document" : "expected one YAML document, found \(docs.count); a spec is a single document", at: mark)
        }
        return docs[0]
    }

    static func parserError(_ parser: yaml_parser_t, file: String) -> YAMLError {
        let problem = parser.problem.map { String(cString: $0) } ?? "syntax error"
        let mark = SourceMark(file: file, line: parser.problem_mark.line + 1, column: parser.problem_mark.column + 1)
        var message = problem
        if let context = parser.context {
            message += " (\(String(cString: context)) at line \(parser.context_mark.line + 1), column \(parser.context_mark.column + 1))"
        }
        return YAMLError(message, at: mark)
    }
}

private let yamlTagPrefix = "tag:yaml.org,2002:"

/// Turns libyaml's event stream into trees. One frame per open collection.
struct TreeBuilder {
    let file: String
    let limits: YAMLLimits
    var documents: [YAMLNode] = []
    var documentStarts: [SourceMark] = []

    private enum Frame {
        case sequence(items: [YAMLNode], mark: SourceMark, anchor: String?, count: Int)
        case mapping(entries: [Entry], pendingKey: Entry?, mark: SourceMark, anchor: String?, count: Int)
    }

    private struct Entry {
        var key: YAMLNode
        var value: YAMLNode?
        var isMerge: Bool
    }

    private var stack: [Frame] = []
    private var anchors: [String: (node: YAMLNode, count: Int)] = [:]
    private var aliasNodes = 0
    private var root: YAMLNode?

    init(file: String, limits: YAMLLimits) {
        self.file = file
        self.limits = limits
    }

    private func mark(_ m: yaml_mark_t) -> SourceMark {
        SourceMark(file: file, line: m.line + 1, column: m.column + 1)
    }

    mutating func handle(_ event: yaml_event_t) throws(YAMLError) {
        let at = mark(event.start_mark)
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            documentStarts.append(at)
            anchors = [:]
            aliasNodes = 0
            root = nil
        case YAML_DOCUMENT_END_EVENT:
            documents.append(root ?? YAMLNode(.null, mark: at, text: ""))
        case YAML_SCALAR_EVENT:
            let s = event.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: s.value, count: s.length), as: UTF8.self)
            let tag = s.tag.map { String(cString: $0) }
            let plain = s.style == YAML_PLAIN_SCALAR_STYLE
            let value = try resolveScalar(text, tag: tag, plain: plain, at: at)
            let node = YAMLNode(value, mark: at, text: text)
            try add(node, count: 1, anchor: s.anchor.map { String(cString: $0) }, isMergeKey: plain && tag == nil && text == "<<")
        case YAML_ALIAS_EVENT:
            let name = String(cString: event.data.alias.anchor)
            guard let target = anchors[name] else { throw YAMLError("unknown alias *\(name)", at: at) }
            aliasNodes += target.count
            if aliasNodes > limits.maxAliasNodes {
                throw YAMLError("aliases expand to more than \(limits.maxAliasNodes) nodes; refusing to load (an alias bomb?)", at: at)
            }
            var node = target.node
            node.mark = at
            try add(node, count: target.count, anchor: nil, isMergeKey: false)
        case YAML_SEQUENCE_START_EVENT:
            let e = event.data.sequence_start
            try checkCollectionTag(e.tag, expected: "seq", at: at)
            try push(.sequence(items: [], mark: at, anchor: e.anchor.map { String(cString: $0) }, count: 1), at: at)
        case YAML_MAPPING_START_EVENT:
            let e = event.data.mapping_start
            try checkCollectionTag(e.tag, expected: "map", at: at)
            try push(.mapping(entries: [], pendingKey: nil, mark: at, anchor: e.anchor.map { String(cString: $0) }, count: 1), at: at)
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            let frame = stack.removeLast()
            switch frame {
            case let .sequence(items, mark, anchor, count):
                try add(YAMLNode(.sequence(items), mark: mark), count: count, anchor: anchor, isMergeKey: false)
            case let .mapping(entries, _, mark, anchor, count):
                let pairs = try Self.finishMapping(entries)
                try add(YAMLNode(.mapping(pairs), mark: mark), count: count, anchor: anchor, isMergeKey: false)
            }
        default:
            break
        }
    }

    /// The member names and indices leading to the collection being built (called while that
    /// collection's frame is popped off the stack).
    private var currentPath: [String] {
        var path: [String] = []
        for frame in stack {
            switch frame {
            case .sequence(let items, _, _, _): path.append(String(items.count))
            case .mapping(_, let pending, _, _, _): path.append(pending?.key.keyText ?? "?")
            }
        }
        return path
    }

    private mutating func push(_ frame: Frame, at: SourceMark) throws(YAMLError) {
        if stack.count >= limits.maxDepth {
            throw YAMLError("nesting deeper than \(limits.maxDepth) levels", at: at)
        }
        stack.append(frame)
    }

    private mutating func add(_ node: YAMLNode, count: Int, anchor: String?, isMergeKey: Bool) throws(YAMLError) {
        if let anchor { anchors[anchor] = (node, count) }
        guard let top = stack.popLast() else {
            root = node
            return
        }
        switch top {
        case .sequence(var items, let mark, let anchor, let total):
            items.append(node)
            stack.append(.sequence(items: items, mark: mark, anchor: anchor, count: total + count))
        case .mapping(var entries, let pending, let mark, let anchor, let total):
            if var entry = pending {
                entry.value = node
                if !entry.isMerge, entry.key.keyText != nil, let clash = entries.first(where: { !$0.isMerge && $0.key == entry.key }) {
                    throw YAMLError("duplicate key \(Self.describeKey(entry.key)) (first at line \(clash.key.mark.line), column \(clash.key.mark.column))",
                                    at: entry.key.mark, path: currentPath + [entry.key.keyText ?? ""])
                }
                entries.append(entry)
                stack.append(.mapping(entries: entries, pendingKey: nil, mark: mark, anchor: anchor, count: total + count))
            } else {
                stack.append(.mapping(entries: entries, pendingKey: Entry(key: node, value: nil, isMerge: isMergeKey), mark: mark, anchor: anchor, count: total + count))
            }
        }
    }

    /// Applies merge keys: explicit keys win, then earlier merged mappings over later ones.
    private static func finishMapping(_ entries: [Entry]) throws(YAMLError) -> [YAMLNode.Pair] {
        var pairs: [YAMLNode.Pair] = []
        var merges: [(at: Int, sources: [YAMLNode])] = []
        for entry in entries {
            let value = entry.value!
            if entry.isMerge {
                switch value.value {
                case .mapping: merges.append((pairs.count, [value]))
                case .sequence(let items) where items.allSatisfy({ if case .mapping = $0.value { true } else { false } }):
                    merges.append((pairs.count, items))
                default:
                    throw YAMLError("the merge key << takes a mapping or a sequence of mappings", at: value.mark)
                }
            } else {
                pairs.append(YAMLNode.Pair(key: entry.key, value: value))
            }
        }
        var inserted = 0
        for merge in merges {
            for source in merge.sources {
                guard case .mapping(let sourcePairs) = source.value else { continue }
                for pair in sourcePairs where !pairs.contains(where: { $0.key == pair.key }) {
                    pairs.insert(pair, at: merge.at + inserted)
                    inserted += 1
                }
            }
        }
        return pairs
    }

    private static func describeKey(_ key: YAMLNode) -> String {
        "'\(key.keyText ?? "")'"
    }

    private func checkCollectionTag(_ tag: UnsafeMutablePointer<yaml_char_t>?, expected: String, at: SourceMark) throws(YAMLError) {
        guard let tag = tag.map({ String(cString: $0) }) else { return }
        if tag == yamlTagPrefix + expected || tag == "!" { return }
        if limits.unknownTags == .reject {
            throw YAMLError("unsupported tag \(tag)", at: at)
        }
    }

    private func resolveScalar(_ text: String, tag: String?, plain: Bool, at: SourceMark) throws(YAMLError) -> YAMLNode.Value {
        guard let tag else { return plain ? CoreSchema.resolvePlain(text) : .string(text) }
        switch tag {
        case "!", yamlTagPrefix + "str":
            return .string(text)
        case yamlTagPrefix + "null":
            if case .null = CoreSchema.resolvePlain(text) { return .null }
            throw YAMLError("!!null value '\(text)' is not null", at: at)
        case yamlTagPrefix + "bool":
            if case .bool(let b) = CoreSchema.resolvePlain(text) { return .bool(b) }
            throw YAMLError("!!bool value '\(text)' is not true or false", at: at)
        case yamlTagPrefix + "int":
            if let v = CoreSchema.integer(text) { return v }
            throw YAMLError("!!int value '\(text)' is not an integer", at: at)
        case yamlTagPrefix + "float":
            switch CoreSchema.resolvePlain(text) {
            case .int(let i): return .float(Double(i))
            case .float(let d): return .float(d)
            default: throw YAMLError("!!float value '\(text)' is not a number", at: at)
            }
        default:
            if limits.unknownTags == .reject { throw YAMLError("unsupported tag \(tag)", at: at) }
            return plain ? CoreSchema.resolvePlain(text) : .string(text)
        }
    }
}
