import CShims
import Foundation

/// Stop requests by signal (SIGTERM from `kill` or Slurm's preemption, SIGINT from Ctrl-C, SIGHUP).
///
/// `install()` (the `lethe` command does it at start-up) keeps every signal's default effect, dying,
/// except inside `deferring`: there the first request is only recorded, so a training loop can finish
/// its step, save the state it resumes from and leave by throwing `Interrupted`; a second request, or
/// one outside such a region, kills the process at once. `Interrupted.die()` then ends the process by
/// the same signal, so a parent (a shell, a sweep's pool, Slurm) sees how it ended.
public enum StopSignals {
    public static func install() { lethe_stop_install() }

    /// The signal recorded while deferring, if any.
    public static var requested: Int32? {
        let s = lethe_stop_requested()
        return s == 0 ? nil : s
    }

    /// Runs `body` with stop requests deferred.
    public static func deferring<R>(_ body: () throws -> R) rethrows -> R {
        lethe_stop_defer(1)
        defer { lethe_stop_defer(0) }
        return try body()
    }

    /// A stop request honoured: the state was saved (where `description` says) and the process should
    /// end by `signal`.
    public struct Interrupted: Error, CustomStringConvertible {
        public var signal: Int32
        public var description: String

        public init(signal: Int32, description: String) {
            self.signal = signal
            self.description = description
        }

        /// Ends the process by the signal (stdio flushed first).
        public func die() -> Never {
            lethe_stop_die(signal)
            fatalError("unreachable: the process dies by signal \(signal)")
        }
    }

    /// The signal's name (SIGTERM, SIGINT, ...).
    public static func name(_ signal: Int32) -> String {
        switch signal {
        case SIGTERM: return "SIGTERM"
        case SIGINT: return "SIGINT"
        case SIGHUP: return "SIGHUP"
        case SIGKILL: return "SIGKILL"
        default: return "signal \(signal)"
        }
    }
}
