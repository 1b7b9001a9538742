import LetheFiles

/// A data file Lethe cannot use, with the file and what is wrong with it.
public struct DataError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(_ message: String, path: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// Reading data files: only regular files (a FIFO or a device is refused at once, never read forever).
enum DataFile {
    static func read(_ path: String) throws(DataError) -> [UInt8] {
        do { return try RegularFile.read(path) } catch { throw DataError(error.message, path: path) }
    }
}
