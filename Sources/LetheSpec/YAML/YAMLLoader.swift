import CYAML

/// Loads YAML through libyaml, event by event, into `YAMLNode` trees.
///
/// libyaml parses the syntax; everything that gives the nodes their meaning lives here: YAML 1.2 core
/// schema resolution, tags, anchors and aliases (bounded), merge keys `<<`, duplicate-key errors.
public enum YAMLLoader {
    /// Every document in the stream.
    public static func loadStream(_ bytes: [UInt8], file: String, limits: YAMLLimits = .spec) throws(YAMLError)
        -> [YAMLNode]
    {
        var builder = TreeBuilder(file: file, limits: limits)
        return try loadStream(bytes, file: file, limits: limits, into: &builder)
    }

    private static func loadStream(_ bytes: [UInt8], file: String, limits: YAMLLimits, into builder: inout TreeBuilder)
        throws(YAMLError) -> [YAMLNode]
    {
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
                    return .failure(parserError(parser.pointee, bytes: buffer, file: file))
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
    public static func loadDocument(_ bytes: [UInt8], file: String, limits: YAMLLimits = .spec) throws(YAMLError)
        -> YAMLNode
    {
        var builder = TreeBuilder(file: file, limits: limits)
        let docs = try loadStream(bytes, file: file, limits: limits, into: &builder)
        guard docs.count == 1 else {
            let mark = docs.count > 1 ? builder.documentStarts[1] : SourceMark(file: file, line: 1, column: 1)
            throw YAMLError(
                docs.isEmpty
                    ? "the file holds no YAML document"
                    : "expected one YAML document, found \(docs.count); a spec is a single document", at: mark)
        }
        return docs[0]
    }

    static func parserError(_ parser: yaml_parser_t, bytes: UnsafeBufferPointer<UInt8>, file: String) -> YAMLError {
        var problem = parser.problem.map { String(cString: $0) } ?? "syntax error"
        var mark = SourceMark(file: file, line: parser.problem_mark.line + 1, column: parser.problem_mark.column + 1)
        if parser.error == YAML_READER_ERROR {
            // Reader errors (invalid UTF-8, control characters such as NUL) carry a byte offset, not a
            // mark: find the line and column (in characters) it falls on.
            let offset = min(Int(parser.problem_offset), bytes.count)
            var line = 1
            var lineStart = 0
            for i in 0..<offset where bytes[i] == 10 {
                line += 1
                lineStart = i + 1
            }
            let column = 1 + bytes[lineStart..<offset].filter { $0 & 0xC0 != 0x80 }.count
            mark = SourceMark(file: file, line: line, column: column)
            if parser.problem_value >= 0, offset < bytes.count {
                problem += String(format: " (byte 0x%02X)", bytes[offset])
            }
        }
        var message = problem
        if let context = parser.context {
            message +=
                " (\(String(cString: context)) at line \(parser.context_mark.line + 1), column \(parser.context_mark.column + 1))"
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

    /// An open collection. A class, so appending to it is amortised O(1): an enum payload taken out of
    /// the stack and put back copied the whole item list on every append (quadratic loading).
    private final class Frame {
        let isMapping: Bool
        let mark: SourceMark
        let anchor: String?
        var count = 1
        var items: [YAMLNode] = []
        var entries: [Entry] = []
        var pendingKey: Entry?
        /// Scalar keys seen so far, for duplicate detection in O(1): key identity -> index in `entries`.
        var seenKeys: [String: Int] = [:]

        init(isMapping: Bool, mark: SourceMark, anchor: String?) {
            self.isMapping = isMapping
            self.mark = mark
            self.anchor = anchor
        }
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
            let value: YAMLNode.Value
            do { value = try resolveScalar(text, tag: tag, plain: plain, at: at) } catch {
                var located = error
                if located.path.isEmpty { located.path = currentPath }
                throw located
            }
            let node = YAMLNode(value, mark: at, text: text)
            try add(
                node, count: 1, anchor: s.anchor.map { String(cString: $0) },
                isMergeKey: plain && tag == nil && text == "<<")
        case YAML_ALIAS_EVENT:
            let name = String(cString: event.data.alias.anchor)
            guard let target = anchors[name] else { throw YAMLError("unknown alias *\(name)", at: at) }
            aliasNodes += target.count
            if aliasNodes > limits.maxAliasNodes {
                throw YAMLError(
                    "aliases expand to more than \(limits.maxAliasNodes) nodes; refusing to load (an alias bomb?)",
                    at: at)
            }
            var node = target.node
            node.mark = at
            try add(node, count: target.count, anchor: nil, isMergeKey: false)
        case YAML_SEQUENCE_START_EVENT:
            let e = event.data.sequence_start
            try checkCollectionTag(e.tag, expected: "seq", at: at)
            try push(Frame(isMapping: false, mark: at, anchor: e.anchor.map { String(cString: $0) }), at: at)
        case YAML_MAPPING_START_EVENT:
            let e = event.data.mapping_start
            try checkCollectionTag(e.tag, expected: "map", at: at)
            try push(Frame(isMapping: true, mark: at, anchor: e.anchor.map { String(cString: $0) }), at: at)
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            let frame = stack.removeLast()
            if frame.isMapping {
                let pairs = try Self.finishMapping(frame.entries)
                frame.entries = []
                try add(
                    YAMLNode(.mapping(pairs), mark: frame.mark), count: frame.count, anchor: frame.anchor,
                    isMergeKey: false)
            } else {
                let items = frame.items
                frame.items = []
                try add(
                    YAMLNode(.sequence(items), mark: frame.mark), count: frame.count, anchor: frame.anchor,
                    isMergeKey: false)
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
            path.append(frame.isMapping ? frame.pendingKey?.key.keyText ?? "?" : String(frame.items.count))
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
        guard let top = stack.last else {
            root = node
            return
        }
        top.count += count
        guard top.isMapping else {
            top.items.append(node)
            return
        }
        guard var entry = top.pendingKey else {
            top.pendingKey = Entry(key: node, value: nil, isMerge: isMergeKey)
            return
        }
        entry.value = node
        top.pendingKey = nil
        if !entry.isMerge, entry.key.keyText != nil {
            let identity = String(describing: entry.key.value)
            if let first = top.seenKeys[identity] {
                let clash = top.entries[first]
                throw YAMLError(
                    "duplicate key \(Self.describeKey(entry.key)) (first at line \(clash.key.mark.line), column \(clash.key.mark.column))",
                    at: entry.key.mark, path: currentPath.dropLast() + [entry.key.keyText ?? ""])
            }
            top.seenKeys[identity] = top.entries.count
        }
        top.entries.append(entry)
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
                case .sequence(let items)
                where items.allSatisfy({ if case .mapping = $0.value { true } else { false } }):
                    merges.append((pairs.count, items))
                default:
                    throw YAMLError("the merge key << takes a mapping or a sequence of mappings", at: value.mark)
                }
            } else {
                pairs.append(YAMLNode.Pair(key: entry.key, value: value))
            }
        }
        var inserted = 0
        var present = Set(pairs.map { String(describing: $0.key.value) })
        for merge in merges {
            for source in merge.sources {
                guard case .mapping(let sourcePairs) = source.value else { continue }
                for pair in sourcePairs where present.insert(String(describing: pair.key.value)).inserted {
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

    private func checkCollectionTag(_ tag: UnsafeMutablePointer<yaml_char_t>?, expected: String, at: SourceMark)
        throws(YAMLError)
    {
        guard let tag = tag.map({ String(cString: $0) }) else { return }
        if tag == yamlTagPrefix + expected || tag == "!" { return }
        if limits.unknownTags == .reject {
            throw YAMLError("unsupported tag \(tag)", at: at)
        }
    }

    private func resolveScalar(_ text: String, tag: String?, plain: Bool, at: SourceMark) throws(YAMLError)
        -> YAMLNode.Value
    {
        let integerPosition = (plain && tag == nil) || tag == yamlTagPrefix + "int"
        if limits.exactIntegers && integerPosition && CoreSchema.overflowsInt64(text) {
            throw YAMLError(
                "integer \(text) is out of range; integers must lie within -2^63...2^63-1 (\(Int.min)...\(Int.max))",
                at: at)
        }
        return try resolveTagged(text, tag: tag, plain: plain, at: at)
    }

    private func resolveTagged(_ text: String, tag: String?, plain: Bool, at: SourceMark) throws(YAMLError)
        -> YAMLNode.Value
    {
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
