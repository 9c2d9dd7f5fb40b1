//! Handing a streamed table's rows to a reader on another thread (issue 12, item 4).
//!
//! One pass over an export's `AzureActivity` decodes every row and tests it against each
//! reader's scope, then hands the kept rows to the readers. The activity parser is about as
//! costly as everything before it, so on a machine with a second core it runs there: the
//! reading thread copies each kept row's cells into a batch (one text and a list of cells,
//! reused once the parser is done with them) and sends full batches down a bounded channel.
//! The parser sees the same rows, with the same positions, in the same order, and with the
//! column changes and restarts where the reader made them, so its answer is the one it gives
//! on the reading thread. With one core it simply runs there.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};

use pim_domain::Column;
use pim_domain::cells::{CellRef, RowCells};
use pim_loganalytics::{RowSink, StreamedRow};
use serde_json::Value;

/// A reader of rows that can read them wherever they are held: in a table, in the reader's
/// buffer, or in a batch handed over from another thread.
pub(crate) trait CellSink: Send {
    /// As [`RowSink::columns`].
    fn columns(&mut self, columns: &[Column]);
    /// As [`RowSink::row`], for cells held anywhere.
    fn row<C: RowCells + ?Sized>(&mut self, position: usize, cells: &C);
    /// As [`RowSink::restart`].
    fn restart(&mut self);
    /// Called once after the last row, on the thread the rows were read on: what the sink
    /// builds from them is best built there, where its memory was taken and can be given back
    /// cheaply.
    fn done(&mut self) {}
    /// Which of `columns` the sink reads, when it reads only some: the others' cells may be
    /// handed over as null rather than copied to its thread (an export's wide columns the sink
    /// never looks at). `None`: every cell.
    fn columns_read(_columns: &[Column]) -> Option<Vec<bool>>
    where
        Self: Sized,
    {
        None
    }
}

/// Rows in a batch before it is sent: enough that the channel is used a few hundred times
/// for half a million rows, few enough that a batch of wide rows stays a few megabytes.
const BATCH_ROWS: usize = 2048;

/// Text in a batch before it is sent, for rows with wide cells (raw claims).
const BATCH_TEXT: usize = 8 << 20;

/// Batches in flight between the threads (besides the one being filled and the one being
/// read): the reader runs ahead by this much at most, so memory stays bounded.
const IN_FLIGHT: usize = 2;

/// One cell of a batch.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Null,
    /// A string: its range in the batch's text.
    Str(usize, usize),
    /// Any other value: its index in the batch's values.
    Other(usize),
}

/// Rows copied out of the reader's buffer.
#[derive(Debug, Default)]
struct Batch {
    text: String,
    values: Vec<Value>,
    cells: Vec<Cell>,
    /// Each row's position and the end of its cells in `cells`.
    rows: Vec<(usize, usize)>,
}

impl Batch {
    fn clear(&mut self) {
        self.text.clear();
        self.values.clear();
        self.cells.clear();
        self.rows.clear();
    }

    /// Copies one row in, the cells `read` leaves out as null.
    fn push<'c>(
        &mut self,
        position: usize,
        cells: impl Iterator<Item = CellRef<'c>>,
        read: Option<&[bool]>,
    ) {
        for (i, cell) in cells.enumerate() {
            let wanted = read.is_none_or(|r| r.get(i).copied().unwrap_or(true));
            let cell = match cell {
                _ if !wanted => Cell::Null,
                CellRef::Null => Cell::Null,
                CellRef::Str(s) => {
                    let start = self.text.len();
                    self.text.push_str(s);
                    Cell::Str(start, self.text.len())
                }
                CellRef::Other(v) => {
                    self.values.push(v.clone());
                    Cell::Other(self.values.len() - 1)
                }
            };
            self.cells.push(cell);
        }
        self.rows.push((position, self.cells.len()));
    }

    /// Whether the batch should be sent now.
    fn full(&self) -> bool {
        self.rows.len() >= BATCH_ROWS || self.text.len() >= BATCH_TEXT
    }

    /// Hands each row to `sink`, in order.
    fn deliver<S: CellSink>(&self, sink: &mut S) {
        let mut start = 0;
        for &(position, end) in &self.rows {
            let row = BatchRow {
                batch: self,
                cells: self.cells.get(start..end).unwrap_or_default(),
            };
            sink.row(position, &row);
            start = end;
        }
    }
}

/// One row of a batch.
struct BatchRow<'b> {
    batch: &'b Batch,
    cells: &'b [Cell],
}

impl RowCells for BatchRow<'_> {
    fn cell(&self, index: usize) -> Option<CellRef<'_>> {
        Some(match *self.cells.get(index)? {
            Cell::Null => CellRef::Null,
            Cell::Str(a, b) => CellRef::Str(self.batch.text.get(a..b)?),
            Cell::Other(i) => CellRef::Other(self.batch.values.get(i)?),
        })
    }
}

/// What the reading thread tells the reader's thread, in the order it happened.
enum Message {
    Columns(Vec<Column>),
    Rows(Batch),
    Restart,
}

/// The reading thread's end of a handoff.
struct Sender {
    messages: SyncSender<Message>,
    /// Batches the reader's thread is done with, to be filled again.
    spare: Receiver<Batch>,
    batch: Batch,
    /// The columns the sink reads ([`CellSink::columns_read`]).
    read: Option<Vec<bool>>,
}

/// A [`RowSink`] that hands its rows to a [`CellSink`], on another thread when the machine has
/// a second core.
pub(crate) struct Handoff<'scope, S: CellSink> {
    state: State<'scope, S>,
}

enum State<'scope, S: CellSink> {
    /// The sink runs here.
    Inline(S),
    /// The sink runs on its own thread.
    Threaded {
        sender: Sender,
        worker: ScopedJoinHandle<'scope, S>,
    },
}

impl<'scope, S: CellSink + 'scope> Handoff<'scope, S> {
    /// Hands rows to `sink`: on a thread of `scope` when the machine has more than one core,
    /// else on the caller's.
    pub(crate) fn start<'env>(scope: &'scope Scope<'scope, 'env>, sink: S) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        if cores < 2 {
            return Self::inline(sink);
        }
        Self::threaded(scope, sink)
    }

    /// Hands rows to `sink` on the caller's thread.
    pub(crate) fn inline(sink: S) -> Self {
        Self {
            state: State::Inline(sink),
        }
    }

    /// Hands rows to `sink` on a thread of `scope`, whatever the machine.
    pub(crate) fn threaded<'env>(scope: &'scope Scope<'scope, 'env>, mut sink: S) -> Self {
        let (messages, inbox) = sync_channel::<Message>(IN_FLIGHT);
        let (give_back, spare) = sync_channel::<Batch>(IN_FLIGHT + 2);
        let worker = scope.spawn(move || {
            // Ends when the reading thread drops its sender.
            for message in inbox {
                match message {
                    Message::Columns(columns) => sink.columns(&columns),
                    Message::Restart => sink.restart(),
                    Message::Rows(mut batch) => {
                        batch.deliver(&mut sink);
                        batch.clear();
                        // The reading thread may have stopped taking spares back: the batch is
                        // then simply dropped.
                        let _ = give_back.try_send(batch);
                    }
                }
            }
            sink.done();
            sink
        });
        Self {
            state: State::Threaded {
                sender: Sender {
                    messages,
                    spare,
                    batch: Batch::default(),
                    read: None,
                },
                worker,
            },
        }
    }

    /// Waits for the sink to read every row handed over, and gives it back.
    pub(crate) fn finish(self) -> S {
        match self.state {
            State::Inline(mut sink) => {
                sink.done();
                sink
            }
            State::Threaded { mut sender, worker } => {
                sender.flush();
                drop(sender);
                match worker.join() {
                    Ok(sink) => sink,
                    // A panic in the reader is a bug: it goes on as it would have on this
                    // thread.
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
        }
    }

    /// Copies one row to the batch, sending it when full.
    fn push<'c>(&mut self, position: usize, cells: impl Iterator<Item = CellRef<'c>>) {
        if let State::Threaded { sender, .. } = &mut self.state {
            sender.batch.push(position, cells, sender.read.as_deref());
            if sender.batch.full() {
                sender.flush();
            }
        }
    }

    /// Sends `message` after the rows before it.
    fn send(&mut self, message: Message) {
        if let State::Threaded { sender, .. } = &mut self.state {
            sender.flush();
            sender.send(message);
        }
    }
}

impl Sender {
    /// Sends the rows batched so far, if any.
    fn flush(&mut self) {
        if self.batch.rows.is_empty() {
            return;
        }
        let next = self.spare.try_recv().unwrap_or_default();
        let full = std::mem::replace(&mut self.batch, next);
        self.send(Message::Rows(full));
    }

    fn send(&mut self, message: Message) {
        // The receiver is only gone when the reader's thread panicked; `finish` then re-raises
        // that panic.
        let _ = self.messages.send(message);
    }
}

impl<'scope, S: CellSink + 'scope> RowSink for Handoff<'scope, S> {
    fn columns(&mut self, columns: &[Column]) {
        match &mut self.state {
            State::Inline(sink) => sink.columns(columns),
            State::Threaded { sender, .. } => {
                sender.read = S::columns_read(columns);
                self.send(Message::Columns(columns.to_vec()));
            }
        }
    }

    fn row(&mut self, position: usize, cells: &[Value]) {
        match &mut self.state {
            State::Inline(sink) => sink.row(position, cells),
            _ => self.push(position, cells.iter().map(CellRef::of)),
        }
    }

    fn row_cells(&mut self, position: usize, cells: &StreamedRow<'_>) {
        match &mut self.state {
            State::Inline(sink) => sink.row(position, cells),
            _ => self.push(position, (0..cells.len()).filter_map(|i| cells.cell(i))),
        }
    }

    fn restart(&mut self) {
        match &mut self.state {
            State::Inline(sink) => sink.restart(),
            _ => self.send(Message::Restart),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Records what it is given, as text.
    #[derive(Debug, Default)]
    struct Record(Vec<String>);

    impl CellSink for Record {
        fn columns(&mut self, columns: &[Column]) {
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            self.0.push(format!("columns {names:?}"));
        }
        fn row<C: RowCells + ?Sized>(&mut self, position: usize, cells: &C) {
            let cells: Vec<Value> = (0..)
                .map_while(|i| cells.cell(i))
                .map(CellRef::to_value)
                .collect();
            self.0.push(format!("{position}: {}", Value::Array(cells)));
        }
        fn restart(&mut self) {
            self.0.push("restart".into());
        }
    }

    fn column(name: &str) -> Column {
        Column {
            name: name.into(),
            kind: String::new(),
        }
    }

    /// Feeds the same rows, column changes and restarts to `sink`.
    fn feed(sink: &mut dyn RowSink) {
        sink.columns(&[column("a")]);
        for i in 0..(3 * BATCH_ROWS + 5) {
            sink.row(
                i,
                &[
                    json!(format!("r{i}")),
                    json!(null),
                    json!({"n": i}),
                    json!(1.5),
                ],
            );
            if i == BATCH_ROWS + 1 {
                sink.columns(&[column("a"), column("b")]);
            }
            if i == 2 * BATCH_ROWS + 3 {
                sink.restart();
            }
        }
        sink.row(7, &[]);
    }

    #[test]
    fn a_thread_sees_what_the_reading_thread_would() {
        let mut here = Handoff::inline(Record::default());
        feed(&mut here);
        let here = here.finish();
        let there = std::thread::scope(|scope| {
            let mut handoff = Handoff::threaded(scope, Record::default());
            feed(&mut handoff);
            handoff.finish()
        });
        assert_eq!(there.0.len(), here.0.len());
        assert_eq!(there.0, here.0);
        assert!(here.0.contains(&"restart".to_owned()));
        assert!(here.0.contains(&"7: []".to_owned()));
        let inline = std::thread::scope(|scope| {
            let mut handoff = Handoff::start(scope, Record::default());
            feed(&mut handoff);
            handoff.finish()
        });
        assert_eq!(inline.0, here.0);
    }

    /// Reads only the first column.
    #[derive(Debug, Default)]
    struct FirstOnly(Record);

    impl CellSink for FirstOnly {
        fn columns(&mut self, columns: &[Column]) {
            self.0.columns(columns);
        }
        fn row<C: RowCells + ?Sized>(&mut self, position: usize, cells: &C) {
            self.0.row(position, cells);
        }
        fn restart(&mut self) {
            self.0.restart();
        }
        fn columns_read(columns: &[Column]) -> Option<Vec<bool>> {
            Some((0..columns.len()).map(|i| i == 0).collect())
        }
    }

    #[test]
    fn cells_a_sink_does_not_read_are_not_copied() {
        let feed = |sink: &mut dyn RowSink| {
            sink.columns(&[column("a"), column("b"), column("c")]);
            for i in 0..(BATCH_ROWS + 3) {
                sink.row(
                    i,
                    &[
                        json!(format!("r{i}")),
                        json!({"n": i}),
                        json!("wide"),
                        json!(7),
                    ],
                );
            }
        };
        let there = std::thread::scope(|scope| {
            let mut handoff = Handoff::threaded(scope, FirstOnly::default());
            feed(&mut handoff);
            handoff.finish()
        });
        let mut here = Handoff::inline(Record::default());
        feed(&mut here);
        let here = here.finish();
        assert_eq!(there.0.0.len(), here.0.len());
        assert_eq!(here.0[1], "0: [\"r0\",{\"n\":0},\"wide\",7]");
        // The columns not read are null; a cell past the columns named (a long row) is
        // copied, as the sink cannot say whether it reads it.
        assert_eq!(there.0.0[1], "0: [\"r0\",null,null,7]");
        assert_eq!(
            there.0.0[BATCH_ROWS + 3],
            format!("{}: [\"r{0}\",null,null,7]", BATCH_ROWS + 2)
        );
    }

    #[test]
    fn nothing_handed_over_gives_the_sink_back_untouched() {
        let sink = std::thread::scope(|scope| Handoff::threaded(scope, Record::default()).finish());
        assert!(sink.0.is_empty());
    }
}
