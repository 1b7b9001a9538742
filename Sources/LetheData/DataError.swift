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
