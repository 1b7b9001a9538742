/// Why a run stopped.
public struct RunError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case failed, verification }
    public var message: String
    /// `verification`: a finished run on which this one depends does not match its manifest.
    public var kind: Kind
    public init(_ message: String, kind: Kind = .failed) {
        self.message = message
        self.kind = kind
    }
    public var description: String { message }
}
