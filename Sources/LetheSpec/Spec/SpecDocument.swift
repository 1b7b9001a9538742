import Foundation
import LetheFiles

/// The largest spec file read (a real spec is a few KiB; this leaves room for long index lists).
public let maxSpecBytes = 256 << 20

/// A spec file as loaded: its YAML tree (with overrides applied), its JSON value and where each
/// value came from.
public struct SpecDocument: Sendable {
    public var path: String
    public var bytes: [UInt8]
    public var json: JSONValue
    public var sourceMap: SourceMap
    public var overrides: [Override]

    /// Reads, parses and applies `overrides` in order. YAML problems come back as located errors.
    public static func load(path: String, overrides: [Override] = []) throws(SpecError) -> SpecDocument {
        let bytes: [UInt8]
        do {
            bytes = try RegularFile.read(path, limit: maxSpecBytes)
        } catch {
            var failure = SpecError(
                "cannot read the spec: \(error.message)", mark: SourceMark(file: path, line: 1, column: 1))
            failure.unreadable = true
            throw failure
        }
        return try parse(bytes, path: path, overrides: overrides)
    }

    public static func parse(_ bytes: [UInt8], path: String, overrides: [Override] = []) throws(SpecError)
        -> SpecDocument
    {
        var root: YAMLNode
        do {
            root = try YAMLLoader.loadDocument(bytes, file: path)
        } catch {
            throw SpecError(error.message, at: JSONPointer(error.path), mark: error.mark)
        }
        for o in overrides { root = try o.apply(to: root) }
        let json: JSONValue
        let map: SourceMap
        do {
            (json, map) = try root.toJSON()
        } catch {
            throw SpecError(error.message, mark: error.mark)
        }
        return SpecDocument(path: path, bytes: bytes, json: json, sourceMap: map, overrides: overrides)
    }

    public func mark(_ pointer: JSONPointer, key: Bool = false) -> SourceMark? {
        sourceMap.mark(for: pointer, key: key) ?? SourceMark(file: path, line: 1, column: 1)
    }

    public func diagnostic(
        _ message: String, at pointer: JSONPointer, key: Bool = false, severity: Diagnostic.Severity = .error
    ) -> Diagnostic {
        Diagnostic(message, at: pointer, mark: mark(pointer, key: key), severity: severity)
    }

    /// Schema violations, each placed at the value (or key) it concerns, in source order.
    public func schemaDiagnostics(_ schema: RunSpecSchema = .embedded, root: String = RunSpecSchema.rootURI)
        -> [Diagnostic]
    {
        var seen = Set<Diagnostic>()
        let all = schema.validator(root: root).validate(json).map {
            diagnostic($0.message, at: $0.instancePath, key: $0.concernsKey)
        }.filter { seen.insert($0).inserted }
        return all.sorted { a, b in
            let ma = a.mark ?? SourceMark(file: "", line: 0, column: 0)
            let mb = b.mark ?? SourceMark(file: "", line: 0, column: 0)
            return (ma.line, ma.column, a.pointer.description) < (mb.line, mb.column, b.pointer.description)
        }
    }
}

/// File-system helpers with messages a user can act on.
public enum FileSystem {
    public static func reason(_ error: Error) -> String {
        if let file = error as? FileError { return file.description }
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if ns.domain == NSCocoaErrorDomain {
            switch ns.code {
            case NSFileReadNoSuchFileError, NSFileNoSuchFileError: return "no such file or directory"
            case NSFileReadNoPermissionError, NSFileWriteNoPermissionError: return "permission denied"
            case NSFileWriteOutOfSpaceError: return "no space left on the device"
            case NSFileWriteVolumeReadOnlyError: return "the file system is read-only"
            case NSFileWriteFileExistsError: return "a file of that name exists"
            case NSFileReadCorruptFileError: return "the file is not in the expected format"
            default: break
            }
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        return ns.localizedFailureReason ?? ns.localizedDescription
    }

    /// What is wrong with `path` as a file (`directory: false`) or folder (`directory: true`), in
    /// words: "does not exist", "is a directory, expected a file", "is a FIFO (named pipe), not a
    /// regular file"; nil when it is what is expected.
    public static func problem(_ path: String, directory: Bool) -> String? {
        guard let kind = FileKind.of(path) else { return "\(path) does not exist" }
        if directory { return kind == .directory ? nil : "\(path) is \(kind.phrase), expected a directory" }
        if kind == .directory { return "\(path) is a directory, expected a file" }
        return kind == .regular ? nil : "\(path) is \(kind.phrase), not a regular file"
    }

    public static func exists(_ path: String, directory: Bool? = nil) -> Bool {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return false }
        return directory.map { $0 == isDir.boolValue } ?? true
    }

    /// `path` made absolute against `directory` and normalised.
    public static func resolve(_ path: String, relativeTo directory: String) -> String {
        let url =
            path.hasPrefix("/")
            ? URL(fileURLWithPath: path) : URL(fileURLWithPath: directory).appendingPathComponent(path)
        return url.standardizedFileURL.path
    }
}
