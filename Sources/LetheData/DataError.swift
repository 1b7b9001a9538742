import LetheFiles

/// A data file Lethe cannot use, with the file and what is wrong with it: the same error as
/// `FileError` (a path and a message a user can act on), named for what the data readers report.
public typealias DataError = FileError

/// Reading data files: only regular files (a FIFO or a device is refused at once, never read forever).
enum DataFile {
    static func read(_ path: String) throws(DataError) -> [UInt8] {
        try RegularFile.read(path)
    }
}
