import Foundation
import LetheFiles
import LetheSpec

/// The per-stage lock of a runs folder: `runs/<hash>.lock`, an exclusive `flock` held while a process
/// decides whether the stage is finished and, if not, builds it. A second process of the same stage
/// waits (saying so) and then reuses what the first finished; a process that dies (even by `kill -9`)
/// drops its lock with it, so the next one takes over and starts the stage again.
///
/// Within one process the lock is re-entrant (nested `holding` calls for one stage take it once);
/// runs inside one process are serialised anyway by `Numerics.exclusively`. `RunDirectory` only
/// checks that it is held.
public enum StageLock {
    private static let table = Mutex()

    private final class Mutex: @unchecked Sendable {
        let lock = NSLock()
        var held: [String: (lock: FileLock, depth: Int)] = [:]
    }

    /// The lock file of the stage whose run directory is `finalPath`.
    public static func lockPath(_ finalPath: String) -> String { finalPath + ".lock" }

    /// Runs `body` holding the stage's lock; `log` hears once when another process holds it.
    public static func holding<R>(_ finalPath: String, log: (String) -> Void = { _ in }, _ body: () throws -> R) throws
        -> R
    {
        try acquire(finalPath, log: log)
        defer { release(finalPath) }
        return try body()
    }

    static func acquire(_ finalPath: String, log: (String) -> Void) throws {
        let key = finalPath
        let already: Bool = table.lock.withLock {
            if let entry = table.held[key] {
                table.held[key] = (entry.lock, entry.depth + 1)
                return true
            }
            return false
        }
        if already { return }
        let folder = URL(fileURLWithPath: finalPath).deletingLastPathComponent().path
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw RunError("\(folder): cannot create the runs folder: \(FileSystem.reason(error))")
        }
        let name = URL(fileURLWithPath: finalPath).lastPathComponent
        let lock = try FileLock.acquire(lockPath(finalPath)) { holder in
            let who = holder.map { "process \($0)" } ?? "another process"
            log(
                "stage \(name.prefix(16)) is locked by \(who), which is building or checking it (\(lockPath(finalPath))); waiting"
            )
        }
        table.lock.withLock { table.held[key] = (lock, 1) }
    }

    static func release(_ finalPath: String) {
        table.lock.withLock {
            guard let entry = table.held[finalPath] else { return }
            if entry.depth > 1 {
                table.held[finalPath] = (entry.lock, entry.depth - 1)
            } else {
                entry.lock.release()
                table.held[finalPath] = nil
            }
        }
    }

    /// Whether this process holds the stage's lock.
    public static func isHeld(_ finalPath: String) -> Bool { table.lock.withLock { table.held[finalPath] != nil } }

    static func requireHeld(_ finalPath: String) throws(RunError) {
        guard isHeld(finalPath) else {
            throw RunError(
                "the stage lock \(lockPath(finalPath)) is not held; build stages through StageLock.holding (Executor.execute does)"
            )
        }
    }

    /// Whether some process (this one included) holds the stage's lock now: a `.partial` folder is then
    /// a run in progress, not an interrupted one.
    public static func isBusy(_ finalPath: String) -> Bool {
        if isHeld(finalPath) { return true }
        guard FileKind.of(lockPath(finalPath), followLinks: false) == .regular else { return false }
        guard let probe = try? FileLock.attempt(lockPath(finalPath)) else { return true }
        probe.release()
        return false
    }
}
